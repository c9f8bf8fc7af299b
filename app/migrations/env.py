"""Alembic environment for the studio database.

At runtime ``app.storage.database.Database`` runs ``upgrade head`` programmatically and hands its own connection in
``config.attributes["connection"]``. Developers can also run ``alembic -c app/alembic.ini upgrade head`` (the
database URL then comes from ``REASONBRAIN_DB`` or the ini file's ``sqlalchemy.url``).
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import create_engine

import app.ratings_store  # noqa: F401  (registers the history and rating tables on Base.metadata)
from app.storage.database import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    db = os.environ.get("REASONBRAIN_DB")
    if db:
        return f"sqlite:///{os.path.abspath(db)}"
    return config.get_main_option("sqlalchemy.url") or "sqlite:///studio-data/studio.db"


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # programmatic use: the caller owns the connection and its transaction
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()  # the pragma autobegan a transaction; alembic must own the next one
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
