"""``python -m app [--preset tiny | --checkpoint PATH] [--mode reasonbrain | reason_then_edit] [--host H] [--port P]
[--db FILE] [--data-dir DIR] [--snapshot-dir DIR | --snapshot-repo DATASET] [--snapshot-every-s N]``."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store import Store


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("app")
    from app.settings import Settings

    try:
        settings = Settings.from_env_and_args(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from app.snapshots import snapshotter_from_settings
    from app.store import Store

    snapshots = snapshotter_from_settings(settings)  # None unless REASONBRAIN_SNAPSHOT_DIR / _REPO is set
    if snapshots is not None:
        try:
            snapshots.restore_if_missing()  # before the store creates an empty database
        except Exception as err:  # network, auth, corrupt remote: say so rather than start empty
            print(f"error: could not restore the history snapshot: {err}", file=sys.stderr)
            return 2
    store = Store(settings.db_path, settings.data_dir)
    if snapshots is None:
        return _serve(settings, store, log)
    snapshots.start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # Spaces stop with SIGTERM; the final snapshot must still run
    try:
        return _serve(settings, store, log)
    finally:
        snapshots.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # gradio closes its server on it, then `finally` blocks run


def _serve(settings: Settings, store: Store, log: logging.Logger) -> int:
    """Load the model, preload demos and serve until interrupted; closes ``store``."""
    from app import consistency
    from app.demo_chains import preload_demo_chains
    from app.engine import Engine
    from app.ui import create_app, launch_options, queue_options

    report = consistency.check(store, fix=True)  # files of writes a crash interrupted (nothing serves yet)
    if report["removed_files"]:
        log.info("removed %d file(s) left by interrupted writes", len(report["removed_files"]))
    if not report["ok"]:
        log.error("history problems found: %d orphan step(s), %d missing file(s); see python -m app.consistency",
                  len(report["orphan_steps"]), len(report["missing_files"]))
    engine = Engine(settings)
    try:
        engine.load()
    except (FileNotFoundError, ValueError) as err:  # no checkpoint there; a mode it cannot edit in
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
