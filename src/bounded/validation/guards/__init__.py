"""Guards: detectors registered by name, each turning text into findings.

    from bounded.validation.guards import registry
    detector = registry.build("pii", {"entities": ["email", "phone"]})
    findings = detector.scan("mail me at a@b.example", ScanContext())

A detector only finds; what happens next (allow, redact, block, drop a retrieved chunk,
log, escalate) is the feature's policy, applied by :class:`GuardPolicy`. See
:mod:`.base` for the interfaces and :mod:`.registry` for adding one.
"""
