"""Argus as a service: the HTTP API (Falcon on waitress), the durable job queue, workers and callbacks.

Following a request through it:

- ``edge`` (body, auth, metrics, JSON, the one error handler) → ``resources/`` (one module per route
  family: video, jobs, vframe, queue, faces, health) with bodies typed by ``schemas`` (from which
  ``openapi`` is generated); ``app`` assembles them; ``service`` is what they share.
- ``net/``: what may be reached (``ssrf`` guard, ``egress`` proxy for FFmpeg, ``sources`` policy).
- ``queue/``: ``protocol`` (Lease, Backend, Hooks), ``tables`` (SQLite/PostgreSQL and their declared
  capabilities), ``database`` (job states, leases, sweeper), ``remote`` (the queue API as a backend).
- ``jobs/``: ``runner`` (claim, lease upkeep), ``running`` (one execution), ``video`` and ``vframe``.
- ``delivery/``: ``callbacks`` (bodies, ids), ``outbox`` (rows), ``sender`` (retries), ``webhooks`` (signing).
- ``tenancy`` (per-key scoping), ``save`` (JPEG frames), ``auth``, ``config``, ``metrics``, ``logs``,
  ``server`` (``argus serve`` / ``argus worker``), ``cli`` (``argus``).

Where things go: a new route → a module in ``resources/`` (its bodies in ``schemas``, its line in
``app.ROUTES`` and ``openapi.PATHS``); a new error → a class in ``errors`` (or ``argus_core.errors``) with
its ``status``, or an entry in ``edge.ERRORS`` for a foreign exception type; a new job kind → an executor
in ``jobs/`` registered in ``jobs.runner.EXECUTORS``; a new database → its ``Capabilities`` in
``queue.tables.CAPABILITIES``; a new queue backend → ``queue.protocol.Backend``, proven by subclassing
``QueueContract`` in ``tests/http/test_http_queue_contract.py``.
"""
