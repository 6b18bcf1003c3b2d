"""Alembic environment: migrations always run on the connection aiprov hands over."""

from alembic import context

from aiprov.adapters.db.schema import Base
from aiprov.adapters.db.search import include_name

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
