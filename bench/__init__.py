"""Benchmarks of the hub, run against a private stack on free loopback ports.

``python -m bench.activation`` measures service activation end to end (see ``bench/README.md``).
Nothing here is imported by the hub itself.
"""
