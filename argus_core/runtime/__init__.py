"""Running models: manifests and their checks, the device seam, and the one model runner per execution style."""
