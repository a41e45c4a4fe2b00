"""Callbacks, from the state change to the receiver: :mod:`.callbacks` (bodies and ids), :mod:`.outbox`
(rows written in the state change's transaction), :mod:`.sender` (delivery with retries) and
:mod:`.webhooks` (Standard Webhooks signing)."""
