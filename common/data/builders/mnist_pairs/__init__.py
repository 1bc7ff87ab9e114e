"""Pairs of MNIST-5k digits composed far apart on a 112x112 canvas."""
