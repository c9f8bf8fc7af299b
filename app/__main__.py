"""``python -m app [--preset tiny | --checkpoint PATH] [--host H] [--port P] [--db FILE] [--data-dir DIR]``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("app")
    from app.settings import Settings

    try:
        settings = Settings.from_env_and_args(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from app.demo_chains import preload_demo_chains
    from app.engine import Engine
    from app.store import Store
    from app.ui import create_app, launch_options, queue_options

    store = Store(settings.db_path, settings.data_dir)
    engine = Engine(settings)
    try:
        engine.load()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        store.close()
        return 2
    try:
        created = preload_demo_chains(engine, store)
        if created:
            log.info("preloaded %d demo chain(s)", len(created))
    except ValueError as err:  # the app is still useful without demos; say why they are missing
        log.warning("demo chains were not preloaded: %s", err)
    demo = create_app(engine, store)
    try:
        demo.queue(**queue_options(settings)).launch(**launch_options(settings, store))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(main())
