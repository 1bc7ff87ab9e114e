"""Paper projects; each imports common, never another project."""
