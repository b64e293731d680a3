"""Validation: what catches bad output before users rely on it, and hostile input before
it reaches a model, a tool or a log.

    guards/      detectors by name (pii, secrets, injection, groundedness) and redaction
    output.py    output schemas: validate, repair, escalate
    tools.py     tool-call arguments against the declared schemas; allow-lists
"""
