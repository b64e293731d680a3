"""The scale-out engine: PostgreSQL with pgvector, one schema per collection.

Needs ``pip install 'bounded[postgres]'``; nothing here is imported unless a collection's
``store`` is a ``postgresql://`` URL.

- ``store``: the schema migration, the write transactions and ``PgIndex``
- ``reads``: BM25 from postings, the HNSW scan, connections (one per thread)
- ``sql``: the schema, and the access and filter conditions of every ranking statement
"""
