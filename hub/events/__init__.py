"""Events out: the transactional outbox, the TMF envelopes, subscriptions' queries, the relay's
names. See ``workflows/events.py`` for how events are delivered."""
