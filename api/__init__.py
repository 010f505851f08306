"""The hub's HTTP API (FastAPI): starts, signals and queries workflows, reads the hub database."""
