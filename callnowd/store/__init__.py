"""Persistence: the typed store interface and its SQLite implementation."""
