"""The inventory audit's domain engine (see :mod:`hub.inventory.engine`)."""
