"""Rate limits and destination policy."""
