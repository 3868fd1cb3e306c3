"""Alembic environment of every branch (see exporter/store/migration.py): runs on the connection llmcost
hands over in `config.attributes`. `target_metadata` (for autogenerate only) holds exporter's tables."""

from alembic import context

from exporter.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
