"""The pure core: values in, values out.

Nothing here opens a file, a socket or reads the clock, and nothing heavy is imported, so a verifier on another
machine can `import aiprov.core` cheaply and check every claim the hub makes.
"""
