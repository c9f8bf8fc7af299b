"""The parts both studio stores stand on.

- :mod:`app.storage.database` -- the SQLite database: engine, pragmas (WAL, foreign keys, busy timeout), short
  sessions with ``BEGIN IMMEDIATE`` writes, Alembic migrations, the declarative ``Base``;
- :mod:`app.storage.images` -- a content-addressed image folder and its one path validator;
- :mod:`app.storage.history_models` / :mod:`app.storage.rating_models` -- the tables and plain results of the
  history store (:mod:`app.store`) and the ratings store (:mod:`app.ratings_store`);
- :mod:`app.storage.rating_settings` -- how rating studies run (defaults, environment variables);
- :mod:`app.storage.rating_import` -- filling the ratings store from method folders and from the history.
"""
