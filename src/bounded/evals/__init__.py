"""Eval suites: promptfoo configs run as written through the gateway, scored, gated and stored.

Submodules are imported where used (``bounded.evals.runner``, ``.store``...): the config
schema imports ``bounded.evals.settings`` and must not pull in the runner.
"""
