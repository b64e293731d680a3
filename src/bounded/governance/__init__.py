"""Governance: risk-tier minimum controls, incidents with their architecture deltas, and
drift signals with alerts. Imports nothing at module level beyond pydantic models."""
