"""Wikitext-103 (raw) from the Hugging Face Hub, as the TFDS dataset wikitext103."""
