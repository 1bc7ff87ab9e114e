"""The Python standard library's own sources, as a small text corpus."""
