"""Who may rate, how they sign in, and the command line that manages rating studies.

Annotators file (``REASONBRAIN_ANNOTATORS``, default ``<data_dir>/annotators.json``, written with mode 0600)::

    {"annotators": {"alice": {"password": "scrypt$16384$8$1$<salt>$<hash>", "admin": false}},
     "hf_users": ["bob"],            # Hugging Face accounts allowed to rate on a Space ("*": every signed-in one)
     "hf_admins": ["bob"]}

Hugging Face accounts can also come from Space variables (they survive restarts where files may not):
``REASONBRAIN_RATE_HF_USERS=bob,carol`` (``*``: every signed-in account), ``REASONBRAIN_RATE_HF_ADMINS=bob``.

Local annotators sign in with name + password (salted ``hashlib.scrypt``); their id is ``local:<name>``. On a
Space with ``hf_oauth`` the Hugging Face login is used instead: id ``hf:<username>``. Admins also see the results
view (method names, scores, exports). Removing someone from the file locks them out at their next action.

    python -m app.annotators add NAME [--admin] [--password-stdin]
    python -m app.annotators add-hf USERNAME [--admin]
    python -m app.annotators remove NAME | list
    python -m app.annotators import-method [--name M] --folder DIR [--records JSONL]   (M: from evaluate's method.json)
    python -m app.annotators import-reference --folder DIR [--split test]   (ground truth -> gold items)
    python -m app.annotators users                                 (who has saved edits: ids for --user)
    python -m app.annotators import-steps [--user ID ...] [--method NAME]   (ID: full, or the badge's 8 chars)
    python -m app.annotators export --out DIR [--push REPO_ID] [--keep-names]

``--data-dir`` / ``--db`` pick the studio database like ``python -m app`` (or ``REASONBRAIN_DATA_DIR`` / ``_DB``).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.identity import HF_PREFIX

LOCAL_PREFIX = "local:"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 8
MAX_FAILURES, FAILURE_WINDOW_S = 5, 300.0  # sign-in attempts per name before a pause


@dataclass(frozen=True)
class Annotator:
    id: str  # "local:<name>" or "hf:<username>": what the rating tables hold
    name: str
    admin: bool


# ----------------------------------------------------------------------------------------------------------------
# Passwords
# ----------------------------------------------------------------------------------------------------------------
def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64); a fresh 16-byte salt per password."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH = "scrypt$16384$8$1$" + "A" * 24 + "$" + "A" * 44  # unknown names cost the same time as known ones


# ----------------------------------------------------------------------------------------------------------------
# The annotators file
# ----------------------------------------------------------------------------------------------------------------
class AnnotatorDirectory:
    """The annotators file, reread when it changes on disk (the CLI may edit it while the app runs)."""

    def __init__(self, path: str, env: Mapping[str, str] | None = None) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        env = os.environ if env is None else env
        # Space variables survive restarts where the data folder may not: HF accounts may also come from there
        self._env_hf = {key: [n.strip() for n in env.get(var, "").split(",") if n.strip()]
                        for key, var in (("hf_users", "REASONBRAIN_RATE_HF_USERS"),
                                         ("hf_admins", "REASONBRAIN_RATE_HF_ADMINS"))}
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._failures: dict[str, list[float]] = {}  # name -> recent failed sign-in times

    def data(self) -> dict[str, Any]:
        """The file's content (a copy) with the HF accounts from the environment added."""
        data = self._file()
        for key, names in self._env_hf.items():
            data[key] += [n for n in names if n not in data[key]]
        return data

    def _file(self) -> dict[str, Any]:
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return {"annotators": {}, "hf_users": [], "hf_admins": []}
        with self._lock:
            if self._cached is None or self._cached[0] != mtime:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
                if not isinstance(data, dict) or not isinstance(data.get("annotators", {}), dict):
                    raise ValueError(f"{self.path} is not an annotators file (see app/annotators.py)")
                data.setdefault("annotators", {})
                data.setdefault("hf_users", [])
                data.setdefault("hf_admins", [])
                self._cached = (mtime, data)
            return json.loads(json.dumps(self._cached[1]))  # a copy

    def _save(self, data: dict[str, Any]) -> None:
        folder = os.path.dirname(self.path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".annotators-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        with self._lock:
            self._cached = None

    # --- editing (CLI) ----------------------------------------------------------------------------------------
    def add(self, name: str, password: str, *, admin: bool = False) -> Annotator:
        """Add (or reset the password of) a local annotator."""
        name = check_name(name)
        data = self._file()
        data["annotators"][name] = {"password": hash_password(password), "admin": bool(admin)}
        self._save(data)
        return Annotator(LOCAL_PREFIX + name, name, bool(admin))

    def add_hf(self, username: str, *, admin: bool = False) -> None:
        if username != "*":
            username = check_name(username)
        data = self._file()
        if username not in data["hf_users"]:
            data["hf_users"].append(username)
        if admin and username != "*" and username not in data["hf_admins"]:
            data["hf_admins"].append(username)
        self._save(data)

    def remove(self, name: str) -> bool:
        data = self._file()
        found = data["annotators"].pop(name, None) is not None
        for key in ("hf_users", "hf_admins"):
            if name in data[key]:
                data[key].remove(name)
                found = True
        if found:
            self._save(data)
        return found

    # --- signing in -------------------------------------------------------------------------------------------
    def authenticate(self, name: Any, password: Any) -> Annotator | None:
        """The local annotator for a correct name + password, else None (also while the name is paused after
        repeated failures)."""
        if not isinstance(name, str) or not isinstance(password, str):
            return None
        name = name.strip()
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if now - t < FAILURE_WINDOW_S]
            self._failures[name] = recent
            if len(recent) >= MAX_FAILURES:
                return None
        entry = self.data()["annotators"].get(name) if NAME_RE.match(name) else None
        ok = verify_password(password, entry["password"] if entry else _DUMMY_HASH) and entry is not None
        if not ok:
            with self._lock:
                self._failures.setdefault(name, []).append(now)
            return None
        with self._lock:
            self._failures.pop(name, None)
        return Annotator(LOCAL_PREFIX + name, name, bool(entry.get("admin")))

    def paused(self, name: Any) -> bool:
        """Whether sign-in for ``name`` is paused after too many failures."""
        now = time.monotonic()
        with self._lock:
            return isinstance(name, str) and len(
                [t for t in self._failures.get(name.strip(), []) if now - t < FAILURE_WINDOW_S]) >= MAX_FAILURES

    def get(self, annotator_id: Any) -> Annotator | None:
        """The annotator behind an id if they are (still) allowed to rate."""
        if not isinstance(annotator_id, str):
            return None
        data = self.data()
        if annotator_id.startswith(LOCAL_PREFIX):
            name = annotator_id[len(LOCAL_PREFIX):]
            entry = data["annotators"].get(name)
            return Annotator(annotator_id, name, bool(entry.get("admin"))) if entry else None
        if annotator_id.startswith(HF_PREFIX):
            name = annotator_id[len(HF_PREFIX):]
            if name in data["hf_users"] or name in data["hf_admins"] or "*" in data["hf_users"]:
                return Annotator(annotator_id, name, name in data["hf_admins"])
        return None

    def from_profile(self, profile: Any) -> Annotator | None:
        """The Hugging Face user signed in on this Space, if allowed to rate."""
        name = getattr(profile, "username", None)
        if name is None and isinstance(profile, dict):
            name = profile.get("preferred_username") or profile.get("username")
        return self.get(HF_PREFIX + name) if isinstance(name, str) and name else None

    def list(self) -> list[Annotator]:
        data = self.data()
        out = [Annotator(LOCAL_PREFIX + n, n, bool(e.get("admin"))) for n, e in sorted(data["annotators"].items())]
        out += [Annotator(HF_PREFIX + n, n, n in data["hf_admins"]) for n in sorted(set(data["hf_users"]))]
        return out


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name.strip()):
        raise ValueError("a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name.strip()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.annotators", description="Manage annotators and rating studies")
    p.add_argument("--data-dir", help="studio data folder (default REASONBRAIN_DATA_DIR or ./studio-data)")
    p.add_argument("--db", help="SQLite file (default <data-dir>/studio.db)")
    p.add_argument("--file", help="annotators file (default REASONBRAIN_ANNOTATORS or <data-dir>/annotators.json)")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add", help="add a local annotator (or reset a password)")
    a.add_argument("name")
    a.add_argument("--admin", action="store_true", help="may see results and export")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    h = sub.add_parser("add-hf", help="allow a Hugging Face account to rate on the Space ('*' = everyone)")
    h.add_argument("username")
    h.add_argument("--admin", action="store_true")
    r = sub.add_parser("remove", help="remove a local annotator or a Hugging Face account")
    r.add_argument("name")
    sub.add_parser("list", help="list annotators")
    m = sub.add_parser("import-method", help="import a method's outputs as rating candidates")
    m.add_argument("--name", help="the method's name (hidden from annotators; default: the folder's method.json)")
    m.add_argument("--folder", required=True, help="a Reason50K-format jsonl + images, or <record id>.png files")
    m.add_argument("--records", help="the Reason50K jsonl the <record id>.png outputs answer")
    m.add_argument("--split", help="which <split>.jsonl of a folder with several (default: test)")
    g = sub.add_parser("import-reference", help="import a Reason50K jsonl's targets as ground truth (gold items)")
    g.add_argument("--folder", required=True, help="a Reason50K folder, e.g. one `python -m reasonbrain synthworld` "
                   "wrote")
    g.add_argument("--split", help="which <split>.jsonl of a folder with several (default: test)")
    sub.add_parser("users", help="list the users with saved edits (full ids; the app's badge shows the first 8)")
    s = sub.add_parser("import-steps", help="import edits saved in the history (private: choose whose)")
    s.add_argument("--user", action="append", dest="users",
                   help="a user id, or its first characters as the app's badge shows them (repeatable; default: "
                        "every user; `users` lists them)")
    s.add_argument("--method", help="method name (default: 'ReasonBrain <preset> @<checkpoint>')")
    e = sub.add_parser("export", help="export ratings (CSV, JSONL, report) and optionally push them to the Hub")
    e.add_argument("--out", required=True)
    e.add_argument("--push", metavar="REPO_ID", help="a Hugging Face dataset repo to upload the export to")
    e.add_argument("--keep-names", action="store_true", help="keep annotator names (default: pseudonyms)")
    e.add_argument("--public", action="store_true", help="create the dataset repo public (default private)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = args.data_dir or os.environ.get("REASONBRAIN_DATA_DIR") or "./studio-data"
    from app.ratings_store import RatingSettings

    overrides = {"annotators_file": args.file} if args.file else {}
    settings = RatingSettings.from_env(os.path.abspath(data_dir), **overrides)
    directory = AnnotatorDirectory(settings.annotators_file)
    try:
        if args.command == "add":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _ask_password()
            who = directory.add(args.name, password, admin=args.admin)
            print(f"added {who.id}{' (admin)' if who.admin else ''} to {directory.path}")
        elif args.command == "add-hf":
            directory.add_hf(args.username, admin=args.admin)
            print(f"allowed Hugging Face user {args.username} in {directory.path}")
        elif args.command == "remove":
            print("removed" if directory.remove(args.name) else f"no annotator named {args.name}")
        elif args.command == "list":
            for who in directory.list():
                print(f"{who.id}{'  (admin)' if who.admin else ''}")
        else:
            return _study_command(args, data_dir, settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _study_command(args: argparse.Namespace, data_dir: str, settings: Any) -> int:
    from app.rating_results import export, push_to_hub
    from app.ratings_store import RatingStore
    from app.store import Store

    db = args.db or os.environ.get("REASONBRAIN_DB") or os.path.join(data_dir, "studio.db")
    with Store(db, data_dir) as store:
        ratings = RatingStore(store, settings)
        if args.command in ("import-method", "import-reference"):
            reference = args.command == "import-reference"
            report = ratings.import_method_folder(
                "reference" if reference else args.name, args.folder,
                records=None if reference else args.records, reference=reference, split=args.split)
            print(f"imported {report.added} output(s), {report.existing} already there; "
                  f"{len(report.skipped)} skipped")
            for why in report.skipped[:20]:
                print(f"  skipped {why}")
        elif args.command == "users":
            for user, chains, steps in user_table(store):
                print(f"{user}  {chains} chain(s), {steps} step(s)")
            return 0
        elif args.command == "import-steps":
            users = None if args.users is None else [resolve_user(store, u) for u in args.users]
            report = ratings.import_steps(user_ids=users, method=args.method)
            whose = "every user" if users is None else ", ".join(users)
            print(f"imported {report.added} step(s) of {whose}, {report.existing} already there; "
                  f"{len(report.skipped)} skipped")
            if report.added + report.existing == 0:
                print("  no saved edits there (`python -m app.annotators users` lists who has some)")
        elif args.command == "export":
            files = export(ratings, args.out, pseudonymize=not args.keep_names)
            print("\n".join(files))
            if args.push:
                url = push_to_hub(args.out, args.push, private=not args.public)
                print(f"pushed to {url}")
        print(json.dumps(ratings.counts()))
    return 0


def user_table(store: Any) -> list[tuple[str, int, int]]:
    """(user id, chains, steps) for every user with saved chains."""
    rows = []
    for user in store.user_ids():
        chains = store.list_chains(user, limit=1000)
        rows.append((user, len(chains), sum(c.num_steps for c in chains)))
    return rows


def resolve_user(store: Any, given: str) -> str:
    """A user id from a full id or its first characters (the app's badge shows 8); ValueError if none or
    several match."""
    given = given.strip()
    known = store.user_ids()
    if given in known:
        return given
    matches = [u for u in known if given and u.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    hint = "`python -m app.annotators users` lists the full ids"
    if not matches:
        raise ValueError(f"no user with saved edits has an id starting with {given!r} "
                         f"({len(known)} user(s) have some; {hint})")
    raise ValueError(f"{given!r} starts {len(matches)} user ids ({', '.join(matches[:5])}): give more characters")


def _ask_password() -> str:
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


if __name__ == "__main__":
    sys.exit(main())
