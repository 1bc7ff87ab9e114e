"""Adapters from artefacts made outside this repo (official checkpoints) to our parameters."""
