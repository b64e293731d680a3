"""The two engines that hold a collection's index, behind one surface.

- ``index``: what sync and search ask of an index (``CollectionIndex``), engine-neutral
- ``sqlite/``: the embedded default, one SQLite file with FTS5 and int8-coded vectors
- ``postgres/``: scale-out, PostgreSQL with BM25 from postings and pgvector's HNSW

A collection's ``store`` URL picks one (``service.open_index``).
"""
