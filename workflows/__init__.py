"""Deterministic Temporal workflows, one business process per module."""
