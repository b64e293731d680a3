"""``bounded serve --workers N``: N gateway processes on one port, one owner of the counters.

See ``supervisor`` (the processes), ``owner`` (budgets, rate limits and the SQLite ledger for
every worker) and ``remote`` (the workers' side of the owner's socket); docs/scaling.md.
"""
