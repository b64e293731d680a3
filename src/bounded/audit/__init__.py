"""The audit log: who changed what, and when. Append-only, in the store.

    audit = AuditLog(db)
    audit.record("prompt.label", "support-answer", actor="ana", detail={"label": "production"})
    for entry in audit.entries(since=time.time() - 86400):
        print(entry.ts, entry.actor, entry.action, entry.subject)

Actions are dotted names, ``piece.verb``: ``prompt.push``, ``prompt.label``, ``key.create``,
``key.revoke``, ``config.reload``, ``release.start``, ``release.decision``, ... Any piece
records its own; the log does not keep a list of them.
"""

from bounded.audit.log import AuditEntry, AuditLog, actor_from_env, record_in

__all__ = ["AuditEntry", "AuditLog", "actor_from_env", "record_in"]
