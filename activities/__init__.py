"""Activity implementations, one class per outside system (or concern).

Each class receives its adapter in the constructor; the worker registers the bound methods.
Adapter errors are mapped onto Temporal's retry model by :mod:`activities.errors`.
"""
