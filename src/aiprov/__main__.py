"""`python -m aiprov` is the `aiprov` command."""

from aiprov.cli.main import main

main()
