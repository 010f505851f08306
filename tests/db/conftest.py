"""The database fixtures of ``test_database`` (each test on SQLite and on the machine's
PostgreSQL), for the other modules of this folder."""

from tests.db.test_database import database_url, sessions

__all__ = ["database_url", "sessions"]
