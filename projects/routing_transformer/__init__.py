"""Routing Transformer (Roy et al., TACL 2021): content-routed sparse attention."""
