"""The embedded engine: one SQLite file per collection.

- ``store``: the schema, the write transactions and ``SqliteIndex``
- ``reads``: BM25 through FTS5, the vector mask, chunk records, status
- ``vectors``: the vectors in memory as int8 codes, scanned with SimSIMD
- ``stemming``: the Porter stem of a query word, to look it up in FTS5's vocabulary
"""
