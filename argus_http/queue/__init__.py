"""The job queue: one :class:`~argus_http.queue.protocol.Backend` protocol, two implementations
(:mod:`.database` over SQLite/PostgreSQL tables in :mod:`.tables`, :mod:`.remote` over the queue API)."""
