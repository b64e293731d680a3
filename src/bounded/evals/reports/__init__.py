"""Run reports: promptfoo's JSON output shape, JUnit XML, and a self-contained HTML page."""
