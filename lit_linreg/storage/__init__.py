"""Storage: atomic file writes, and checkpoint files that are checked before anything in them is used."""
