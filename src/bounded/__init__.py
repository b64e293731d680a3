"""bounded: a control plane for AI features."""

__version__ = "0.1.0"
