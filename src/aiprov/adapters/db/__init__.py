"""The registry database: SQLite (WAL) by default, PostgreSQL for many machines."""
