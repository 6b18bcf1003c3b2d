"""Adapters: the I/O behind the ports (files, blob stores, databases)."""
