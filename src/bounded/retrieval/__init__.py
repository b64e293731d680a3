"""Retrieval: sources, change detection, chunking, a hybrid index and context assembly.

See docs/retrieval.md. Importing this package loads nothing heavy: the embedding model,
pypdf and numpy-backed caches load on first use.

At the top, the piece's interface and the vocabulary its parts share:

- ``config``: collections and a feature's ``retrieval:`` as declared in ``bounded.yaml``
- ``service``: the one object the CLI, routes, refresher and context assembly share
- ``hooks``, ``routes``, ``refresher``: what the gateway calls, mounts and runs
- ``context``: packing a feature's chunks into its prompt, with citations
- ``access``: who may read what (labels), checked inside every index query
- ``search``: hybrid search over either engine (RRF, MMR)
- ``documents``, ``embedding``: documents, blocks and chunks; embedders and their vectors

And one package per part:

- ``sources/``: what a source lists, SSRF-safe fetching, parsing bytes into documents
- ``ingest/``: chunking, token estimates, sync with change detection, freshness
- ``engines/``: the index surface both engines implement (``engines.index``), the embedded
  SQLite engine (``engines.sqlite``) and the scale-out PostgreSQL one (``engines.postgres``)
"""
