"""The stages of the request path, one module each; see :mod:`bounded.gateway.call`.

auth      key -> principal (401/403 before the body is read)
body      size limit, JSON, the request schema (400/413/422)
resolve   feature or model -> target
prompt    the feature's prompt version rendered before the client's messages
context   retrieval: numbered sources in, citations out
settle    the ledger row: written before the reply (or a stream's end) leaves
admit     budgets and rate limits reserved before any upstream call (429)
route     the router: strategy, retries, breakers, fallbacks
"""
