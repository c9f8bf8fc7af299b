"""Consistency check of the studio's database against its image folder.

    python -m app.consistency --db studio-data/studio.db --data-dir studio-data [--fix] [--json]

Problems (exit status 1): ``orphan_steps`` (a step whose chain or parent row is missing) and ``missing_files``
(a row pointing at an image that is not on disk). ``unreferenced_files`` (images no row uses, temp files of
interrupted writes) are harmless leftovers; ``--fix`` removes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.store import ChainRow, StepRow, Store


def check(store_or_paths: Store | tuple[str, str] | Sequence[str], *, fix: bool = False) -> dict[str, Any]:
    """Report on ``store_or_paths`` (a :class:`Store`, or ``(db_path, data_dir)``).

    Returns ``{"ok", "orphan_steps", "missing_files", "unreferenced_files", "removed_files", "chains", "steps",
    "files"}``; ``ok`` means no orphan steps and no missing files. ``fix=True`` deletes unreferenced files
    (rechecked under the database's write lock, so it is safe while the app runs).
    """
    if isinstance(store_or_paths, Store):
        return _check(store_or_paths, fix=fix)
    db_path, data_dir = store_or_paths
    with Store(db_path, data_dir) as store:
        return _check(store, fix=fix)


def _check(store: Store, *, fix: bool) -> dict[str, Any]:
    chain = aliased(ChainRow)
    parent = aliased(StepRow)
    with store.engine.connect() as conn:
        n_chains = len(conn.execute(select(ChainRow.id)).all())
        orphans = conn.execute(
            select(StepRow.id)
            .outerjoin(chain, chain.id == StepRow.chain_id)
            .outerjoin(parent, parent.id == StepRow.parent_id)
            .where((chain.id.is_(None)) | (StepRow.parent_id.is_not(None) & parent.id.is_(None)))
            .order_by(StepRow.id)
        ).scalars().all()
        refs: list[tuple[str, str, str, str]] = [
            ("chains", cid, "source_image", path)
            for cid, path in conn.execute(select(ChainRow.id, ChainRow.source_image))
        ]
        n_steps = 0
        for sid, inp, out in conn.execute(select(StepRow.id, StepRow.input_image, StepRow.output_image)):
            n_steps += 1
            refs += [("steps", sid, "input_image", inp), ("steps", sid, "output_image", out)]

    missing = []
    for table, row_id, column, path in refs:
        try:
            present = os.path.isfile(store.image_path(path))
            reason = "file not found"
        except ValueError as err:
            present, reason = False, f"invalid path: {err}"
        if not present:
            missing.append({"table": table, "id": row_id, "column": column, "path": path, "reason": reason})

    referenced = {path for *_, path in refs}
    files = store.image_files()
    unreferenced = sorted(p for p in files if p not in referenced)
    removed: list[str] = []
    if fix and unreferenced:
        removed = store.gc_images(unreferenced)
        unreferenced = [p for p in unreferenced if p not in set(removed)]
    return {
        "ok": not orphans and not missing,
        "orphan_steps": list(orphans),
        "missing_files": missing,
        "unreferenced_files": unreferenced,
        "removed_files": removed,
        "chains": n_chains,
        "steps": n_steps,
        "files": len(files),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"chains: {report['chains']}  steps: {report['steps']}  image files: {report['files']}",
        f"orphan steps: {len(report['orphan_steps'])}",
        *(f"  {sid}" for sid in report["orphan_steps"]),
        f"rows pointing at missing images: {len(report['missing_files'])}",
        *(f"  {m['table']}.{m['column']} of {m['id']}: {m['path']} ({m['reason']})" for m in report["missing_files"]),
        f"unreferenced image files: {len(report['unreferenced_files'])}"
        + (" (remove them with --fix)" if report["unreferenced_files"] else ""),
        *(f"  {p}" for p in report["unreferenced_files"]),
    ]
    if report["removed_files"]:
        lines.append(f"removed unreferenced files: {len(report['removed_files'])}")
    lines.append("OK" if report["ok"] else "PROBLEMS FOUND")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.consistency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the studio's SQLite file")
    parser.add_argument("--data-dir", required=True, help="the folder holding images/")
    parser.add_argument("--fix", action="store_true", help="delete unreferenced image files")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.db):
        print(f"error: no database at {args.db}", file=sys.stderr)
        return 2
    report = check((args.db, args.data_dir), fix=args.fix)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
