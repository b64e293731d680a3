"""Bringing an index in line with its sources.

- ``sync``: per item and per document change detection; parse, chunk, embed, replace
- ``chunking``: structure-aware chunks, token-sized with overlap
- ``tokens``: token estimates and sentence boundaries (also used to pack context)
- ``freshness``: changes in the sources that the index has not taken in yet
"""
