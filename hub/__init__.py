"""The hub's shared core: settings, errors, database, data converter, and telecom helpers."""
