"""The Lazy Neuron Phenomenon / Top-k Transformer (Li et al., ICLR 2023, arXiv 2210.06313)."""
