"""The processing pipeline: decoder and inference processes around the shared-memory ring, the
coordinator that orders and aggregates their results, and the Engine facade."""
