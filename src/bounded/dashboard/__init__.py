"""The dashboard at ``/ui``: server-rendered pages, SVG charts, no script, no CDN.

    mount = Dashboard(db, runtime=lambda: gateway.runtime, authenticate=..., admin_key=key).mount()

See docs/dashboard.md.
"""
