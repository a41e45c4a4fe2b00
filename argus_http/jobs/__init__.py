"""Running leased jobs: :mod:`.runner` (claim, lease upkeep, one thread a job), :mod:`.running` (one
execution and how it ends), :mod:`.video` (engine jobs → callbacks) and :mod:`.vframe` (frames-only tasks)."""
