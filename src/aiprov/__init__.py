"""aiprov: a model hub with provenance you can verify.

Importing this package must stay cheap: heavy libraries are imported by the adapter or command that needs them.
"""

__version__ = "0.1.0"
