"""Argus as a service: the HTTP API (Falcon on waitress), the durable job queue, workers and callbacks.

Modules, one job each: ``config`` (settings), ``db`` (tables and connection), ``jobqueue`` (job states,
leases, sweeper), ``outbox`` (callback rows), ``callbacks`` (callback bodies of CONTRACT §7), ``sender``
(delivery), ``webhooks`` (Standard Webhooks signing), ``ssrf`` (URL safety), ``auth`` (Qiniu tokens),
``app`` (routes), ``runner`` (worker loop), ``remote`` (the queue API as a worker backend), ``server``
(``argus serve`` / ``argus worker``).
"""
