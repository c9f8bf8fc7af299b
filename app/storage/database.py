"""The studio database: one SQLite file, one SQLAlchemy engine, Alembic migrations (``app/migrations``).

Concurrency: a session per call, WAL journal. Write transactions start with ``BEGIN IMMEDIATE`` (taking SQLite's
write lock up front instead of failing to upgrade a read lock with "database is locked"), are serialised inside
the process by a mutex and across processes by ``busy_timeout``. Every committed transaction is durable (WAL,
commit on leaving the session), so data survives a ``kill -9``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BUSY_TIMEOUT_MS = 5000
MAX_USER_ID_CHARS = 128  # a person's id (history user, annotator) as the tables hold it

# Constraint names (migration 0001 was written with them; tests compare the models with alembic's autogenerate)
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime (SQLite stores naive text; we store UTC and re-attach the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store timestamps must be timezone-aware (use datetime.now(timezone.utc))")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class NotFound(KeyError):
    """No such row for this user (also raised when the row exists but belongs to someone else)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Database:
    """The SQLite file at ``db_path``, migrated to the latest schema on open."""

    def __init__(self, db_path: str) -> None:
        self.path = os.path.abspath(os.path.expanduser(str(db_path)))
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.engine: Engine = create_engine(
            URL.create("sqlite+pysqlite", database=self.path),
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=16,
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_mutex = threading.Lock()
        self.migrate()

    def migrate(self) -> None:
        """``alembic upgrade head`` on our own connection (no alembic.ini needed); a no-op when up to date."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", str(self.engine.url).replace("%", "%%"))
        with self._write_mutex, self._write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One short transaction. Writes take SQLite's write lock at BEGIN (IMMEDIATE), after our own mutex."""
        if not write:
            with self._read_sessions.begin() as session:
                yield session
            return
        with self._write_mutex, self._write_sessions.begin() as session:
            session.connection()  # emit BEGIN IMMEDIATE now, before any file is touched
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # We emit BEGIN ourselves (see _on_begin): pysqlite's implicit transactions cannot BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("SQLite refused WAL mode (journal_mode=%s); concurrent readers will block", mode)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
