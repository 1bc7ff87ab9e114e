"""Three kinds of text available offline (Python code, English prose, chess games), one corpus."""
