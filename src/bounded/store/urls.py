"""Store URLs: which engine a URL names, and the forms each driver wants.

    dialect_of("sqlite:///.bounded/bounded.db")         # "sqlite"
    sqlite_path("sqlite:///.bounded/bounded.db")        # Path(".bounded/bounded.db")
    psycopg_url("postgresql+psycopg://db/bounded")      # "postgresql://db/bounded"

Plain string work, importable by the store, its migrations and the retrieval engines alike.
"""

from __future__ import annotations

from pathlib import Path


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` to a Path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix) :])


def dialect_of(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgresql"
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
