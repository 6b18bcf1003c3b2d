"""The `aiprov` command line (Typer + Rich): one module per command group, each command a few lines over a service."""
