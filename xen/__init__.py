"""Placeholder package; see docs/."""
