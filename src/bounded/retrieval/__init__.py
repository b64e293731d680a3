"""Retrieval: sources, change detection, chunking, a hybrid index and context assembly.

See docs/retrieval.md. Importing this package loads nothing heavy: the embedding model,
pypdf and numpy-backed caches load on first use.
"""
