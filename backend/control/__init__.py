"""Control plane: caches, credentials and their persistence."""
