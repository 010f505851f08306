"""The database fixture of ``test_database`` (each test on SQLite and on the machine's
PostgreSQL; ``database_url`` is the suite's), for the other modules of this folder."""

from tests.db.test_database import sessions

__all__ = ["sessions"]
