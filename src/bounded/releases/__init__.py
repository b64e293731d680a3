"""Releases: a candidate prompt version (and route) shadowed or canaried against the stable
one, watched with an always-valid sequential test, promoted or rolled back automatically.

Submodules are imported where used (``bounded.releases.store``, ``.evaluator``...): the config
schema imports ``bounded.releases.settings`` and must not pull in the rest.
"""
