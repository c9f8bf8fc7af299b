"""A training recipe as data: its data sets, the base settings, each stage's differences and the steps after them.

    python -m reasonbrain.training.recipe run RECIPE [--from-stage N | --from-step NAME] [--to-step NAME]
        [--threads N] [--dry-run]
    python -m reasonbrain.training.recipe show RECIPE [--stage N]
    python -m reasonbrain.training.recipe write RECIPE
    python -m reasonbrain.training.recipe data RECIPE [--stage N] [--no-progress]
    python -m reasonbrain.training.recipe stages RECIPE

RECIPE: ``configs/recipes/synth_teacher.json`` (the synth teacher's nine stages, ``reasonbrain.training.train``) or
``configs/recipes/synth_reader.json`` (its reading phase, ``reasonbrain.training.distill_reader``); ``trainer``
names the stages' training module (default ``reasonbrain.training.train``). A stage's config is ``base`` updated with
the stage's ``set``; every stage after the first continues from the previous stage's ``checkpoint`` (or the folder
its ``from_checkpoint`` names), which goes into the config key its trainer reads (``init_checkpoint``,
``init_reader``). ``write`` renders each stage's config into its ``config_file`` (generated files, which the trainer
reads); ``run`` refuses to start while one of them differs from the recipe. ``steps`` follow the stages: each runs a
``tool`` script or a ``module`` with its ``positional`` arguments and ``args`` (``--key value``; ``true``: the bare
flag), where ``{recipe}`` stands for the recipe file and ``{last_run}`` for the last stage's run folder.
``run`` generates the data sets (a folder whose ``meta.json`` records the recipe's options is kept), trains the
stages in order (a stage whose run reached its last step is skipped, one that stopped resumes) and runs the steps
(one whose declared ``output`` exists is skipped; one without an ``output`` runs every time).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

RECIPE_KEYS = {"about", "trainer", "data", "base", "stages", "steps"}
STAGE_KEYS = {"config_file", "about", "set", "from_checkpoint"}
STEP_KEYS = {"name", "about", "tool", "module", "positional", "args", "output"}
# synthworld option -> the meta.json key that records it (options outside this map are not compared)
DATA_META_KEYS = {"n": "n", "seed": "seed", "chains": "n_chains", "split_fractions": "split_fractions",
                  "resolution": "resolution"}


@dataclass(frozen=True)
class Trainer:
    """How a recipe's stages train: ``python -m module --config FILE [--resume]``."""
    module: str
    init_key: str  # the config key a later stage's starting checkpoint goes in
    resume_file: str  # in the run folder: what a stopped run resumes from (a JSON one records its "step")


TRAINERS = {t.module: t for t in (
    Trainer("reasonbrain.training.train", "init_checkpoint", "state/progress.json"),
    Trainer("reasonbrain.training.distill_reader", "init_reader", "state.pt"),
)}
DEFAULT_TRAINER = "reasonbrain.training.train"


@dataclass(frozen=True)
class Stage:
    number: int  # 1-based, in recipe order
    config_file: str
    about: str
    config: dict[str, Any]  # the merged training config

    @property
    def run(self) -> str:
        return self.config["output_dir"]


@dataclass(frozen=True)
class Command:
    """A step after the stages, its placeholders filled in."""
    name: str
    about: str
    argv: list[str]  # after the interpreter: [tool, ...] or ["-m", module, ...]
    tool: str | None  # the script (checked to exist before anything runs); None for a module
    output: str | None  # the step is complete once this exists; None: it runs every time


@dataclass(frozen=True)
class Recipe:
    path: str
    trainer: Trainer
    data: list[dict[str, Any]]
    stages: list[Stage]
    steps: list[Command]

    def stage(self, number: int) -> Stage:
        if not 1 <= number <= len(self.stages):
            raise ValueError(f"stage {number} is not in {self.path} (stages 1 to {len(self.stages)})")
        return self.stages[number - 1]

    def step_index(self, name: str) -> int:
        names = [c.name for c in self.steps]
        if name not in names:
            raise ValueError(f"step {name!r} is not in {self.path} (steps: {', '.join(names) or 'none'})")
        return names.index(name)

    def stage_for_run(self, run: str) -> Stage:
        """The stage whose ``output_dir`` is ``run``."""
        for stage in self.stages:
            if os.path.normpath(stage.run) == os.path.normpath(run):
                return stage
        raise ValueError(f"{run} is not the output_dir of a stage of {self.path}")

    def previous_runs(self, run: str) -> list[str]:
        """The runs ``run`` continued from, earliest first."""
        return [s.run for s in self.stages[: self.stage_for_run(run).number - 1]]

    def data_for(self, stages: list[Stage]) -> list[dict[str, Any]]:
        """The data sets these stages read, in recipe order."""
        folders = {d for s in stages for d in (s.config["data_dir"], *s.config.get("extra_train_dirs", []))}
        return [d for d in self.data if d["out"] in folders]


def load_recipe(path: str) -> Recipe:
    """A recipe without ``data`` reads data sets that another recipe makes (the reader's: the teacher's)."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    _check_keys(raw, RECIPE_KEYS, path)
    trainer_name = raw.get("trainer", DEFAULT_TRAINER)
    if trainer_name not in TRAINERS:
        raise ValueError(f"{path}: unknown trainer {trainer_name!r} (known: {sorted(TRAINERS)})")
    data = raw.get("data", [])
    for entry in data:
        if not {"out", "n", "seed"} <= set(entry):
            raise ValueError(f"{path}: data entry {entry} needs out, n and seed")
    stages = merge_stages(raw.get("base", {}), raw["stages"], path, TRAINERS[trainer_name])
    listed = {d["out"] for d in data}
    for stage in stages if "data" in raw else []:
        missing = {stage.config["data_dir"], *stage.config.get("extra_train_dirs", [])} - listed
        if missing:
            raise ValueError(f"{path}: stage {stage.number} reads {sorted(missing)}, which the recipe's data lacks")
    for key in ("config_file", "run"):
        values = [getattr(s, key) for s in stages]
        if len(set(values)) != len(values):
            raise ValueError(f"{path}: two stages share a {key}: {values}")
    values = {"{recipe}": path, "{last_run}": stages[-1].run}
    steps = [load_command(entry, f"{path} step {n}", values) for n, entry in enumerate(raw.get("steps", []), 1)]
    names = [c.name for c in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two steps share a name: {names}")
    return Recipe(path=path, trainer=TRAINERS[trainer_name], data=data, stages=stages, steps=steps)


def merge_stages(base: dict[str, Any], stages: list[dict[str, Any]], path: str = "recipe",
                 trainer: Trainer = TRAINERS[DEFAULT_TRAINER]) -> list[Stage]:
    merged: list[Stage] = []
    for number, entry in enumerate(stages, start=1):
        _check_keys(entry, STAGE_KEYS, f"{path} stage {number}")
        changes = entry.get("set", {})
        if "output_dir" not in changes:
            raise ValueError(f"{path}: stage {number} needs its own output_dir")
        config = {**base, **changes}
        if merged:
            if trainer.init_key in changes:
                raise ValueError(f"{path}: stage {number} sets {trainer.init_key}; a later stage always continues "
                                 "from the previous stage's checkpoint (from_checkpoint names another of its folders)")
            config[trainer.init_key] = posixpath.join(merged[-1].run, entry.get("from_checkpoint", "checkpoint"))
        elif "from_checkpoint" in entry:
            raise ValueError(f"{path}: stage 1 has from_checkpoint, but no stage before it")
        merged.append(Stage(number, entry["config_file"], entry.get("about", ""), config))
    return merged


def load_command(entry: dict[str, Any], where: str, values: dict[str, str]) -> Command:
    """A ``steps`` entry with its placeholders (``values``' keys) replaced in every string."""
    _check_keys(entry, STEP_KEYS, where)
    if "name" not in entry or ("tool" in entry) == ("module" in entry):
        raise ValueError(f"{where}: a step needs a name and either a tool or a module")
    entry = _fill(entry, values)
    head = [entry["tool"]] if "tool" in entry else ["-m", entry["module"]]
    argv = [*head, *(str(v) for v in entry.get("positional", [])), *_flags(entry.get("args", {}))]
    return Command(entry["name"], entry.get("about", ""), argv, entry.get("tool"), entry.get("output"))


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in values.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _check_keys(entry: dict, allowed: set[str], where: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


def render_config(config: dict[str, Any]) -> str:
    """A stage's config file text (keys sorted, so that two stages' files compare line by line)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def stale_config_files(recipe: Recipe, stages: list[Stage] | None = None) -> list[str]:
    """Config files that are missing or differ from what the recipe renders."""
    stale = []
    for stage in recipe.stages if stages is None else stages:
        if not os.path.isfile(stage.config_file):
            stale.append(stage.config_file)
            continue
        with open(stage.config_file, encoding="utf-8") as f:
            if json.load(f) != stage.config:
                stale.append(stage.config_file)
    return stale


def write_config_files(recipe: Recipe) -> list[str]:
    """Render every stage's config file; returns the files whose text changed."""
    changed = []
    for stage in recipe.stages:
        text = render_config(stage.config)
        if os.path.isfile(stage.config_file):
            with open(stage.config_file, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        os.makedirs(os.path.dirname(stage.config_file) or ".", exist_ok=True)
        with open(stage.config_file, "w", encoding="utf-8") as f:
            f.write(text)
        changed.append(stage.config_file)
    return changed


def data_is_complete(entry: dict[str, Any]) -> bool:
    """The folder's meta.json (written last by synthworld) records the entry's options."""
    meta_path = os.path.join(entry["out"], "meta.json")
    if not os.path.isfile(meta_path):
        return False
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    for option, key in DATA_META_KEYS.items():
        if option in entry:
            want, have = entry[option], meta.get(key)
            if isinstance(want, list):
                want, have = [float(v) for v in want], [float(v) for v in have or []]
            if want != have:
                return False
    return True


def run_progress(stage: Stage, trainer: Trainer) -> tuple[str, int | None]:
    """("done" | "stopped" | "new", last step) of a stage's run folder. Done: its summary.json (written last)
    reached the stage's last step and its checkpoint/ is there; stopped: it has the trainer's resume file (the step
    is None where that file does not record it)."""
    out, steps = stage.run, 0
    target = stage.config.get("stop_after_steps") or stage.config["max_steps"]
    if os.path.isfile(os.path.join(out, "summary.json")):
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        if steps >= target and os.path.isdir(os.path.join(out, "checkpoint")):
            return "done", steps
    resume_file = os.path.join(out, trainer.resume_file)
    if os.path.isfile(resume_file):
        if not resume_file.endswith(".json"):
            return "stopped", None
        with open(resume_file, encoding="utf-8") as f:
            return "stopped", json.load(f)["step"]
    return "new", steps


def _flags(options: dict[str, Any]) -> list[str]:
    argv = []
    for key, value in options.items():
        if value is False:
            continue
        argv.append("--" + key.replace("_", "-"))
        if value is not True:
            argv += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return argv


def data_command(entry: dict[str, Any], threads: int | None = None, progress: bool = True) -> list[str]:
    argv = [sys.executable, "-m", "reasonbrain", "synthworld", *_flags(entry)]
    if threads:
        argv += ["--workers", str(threads)]
    return argv + ([] if progress else ["--no-progress"])


@dataclass(frozen=True)
class Step:
    what: str
    status: str  # what happens to it: "run", "resume from step N", or why it is skipped
    argv: list[str] | None  # None: skipped


def data_steps(recipe: Recipe, stages: list[Stage], threads: int | None = None, progress: bool = True) -> list[Step]:
    return [Step(f"data {d['out']}", "complete, kept", None) if data_is_complete(d)
            else Step(f"data {d['out']}", "run", data_command(d, threads, progress))
            for d in recipe.data_for(stages)]


def stage_step(recipe: Recipe, stage: Stage) -> Step:
    what = f"stage {stage.number} ({stage.run})"
    state, step = run_progress(stage, recipe.trainer)
    argv = [sys.executable, "-m", recipe.trainer.module, "--config", stage.config_file]
    if state == "done":
        return Step(what, f"complete at step {step}, skipped", None)
    if state == "stopped":
        where = f"step {step}" if step is not None else os.path.join(stage.run, recipe.trainer.resume_file)
        return Step(what, f"resume from {where}", [*argv, "--resume"])
    return Step(what, "run", argv)


def command_step(command: Command) -> Step:
    what = f"{command.name} ({command.tool or command.argv[1]})"  # argv[1]: the module after "-m"
    if command.output and os.path.exists(command.output):
        return Step(what, f"{command.output} exists, skipped", None)
    return Step(what, "run", [sys.executable, *command.argv])


def select(recipe: Recipe, from_stage: int = 1, from_step: str | None = None,
           to_step: str | None = None) -> tuple[list[Stage], list[Command]]:
    """The stages and steps a run covers: from ``from_stage`` on, or only the steps from ``from_step`` on (every
    stage comes before the steps), up to and with ``to_step``."""
    first = recipe.step_index(from_step) if from_step else 0
    last = recipe.step_index(to_step) + 1 if to_step else len(recipe.steps)
    if last <= first:
        raise ValueError(f"step {to_step!r} comes before step {from_step!r} in {recipe.path}")
    stages = [] if from_step else recipe.stages[recipe.stage(from_stage).number - 1:]
    return stages, recipe.steps[first:last]


def plan(recipe: Recipe, from_stage: int = 1, threads: int | None = None, progress: bool = True,
         from_step: str | None = None, to_step: str | None = None) -> list[Step]:
    """The data, stage and after-stage steps of ``run`` (see :func:`select`), each with what will happen to it."""
    stages, commands = select(recipe, from_stage, from_step, to_step)
    return [*data_steps(recipe, stages, threads, progress), *(stage_step(recipe, s) for s in stages),
            *(command_step(c) for c in commands)]


Execute = Callable[[list[str], dict[str, str]], int]  # (argv, env) -> exit status


def execute_steps(steps: list[Step], threads: int | None = None, execute: Execute | None = None) -> None:
    """Run the steps that have a command, in order, stopping at the first failure."""
    execute = execute or (lambda argv, env: subprocess.run(argv, env=env).returncode)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    for step in steps:
        logger.info("%s: %s", step.what, step.status)
        if step.argv is None:
            continue
        logger.info("+ %s", " ".join(step.argv))
        code = execute(step.argv, env)
        if code != 0:
            raise RuntimeError(f"{step.what} failed (exit status {code}): {' '.join(step.argv)}")


def run_recipe(recipe: Recipe, from_stage: int = 1, threads: int | None = None, progress: bool = True,
               execute: Execute | None = None, from_step: str | None = None, to_step: str | None = None) -> list[Step]:
    """Run the recipe's pending steps in order (``execute``: see :func:`execute_steps`). Raises before any step
    when a stage's config file differs from the recipe or a step's tool is missing."""
    stages, commands = select(recipe, from_stage, from_step, to_step)
    stale = stale_config_files(recipe, stages)
    if stale:
        raise ValueError(f"{', '.join(stale)} differ from {recipe.path}; render them first: "
                         f"python -m reasonbrain.training.recipe write {recipe.path}")
    for command in commands:
        if command.tool and not os.path.isfile(command.tool):
            raise ValueError(f"step {command.name}'s tool {command.tool} does not exist (run from the repository root)")
    steps = plan(recipe, from_stage, threads, progress, from_step, to_step)
    execute_steps(steps, threads, execute)
    return steps


def stages_markdown(recipe: Recipe) -> str:
    """The stage table the README shows (each stage continues from the one above it)."""
    rows = ["| stage | config (generated) | run | steps | batch | lr | extra training data | about |",
            "|---:|---|---|---:|---:|---:|---|---|"]
    for s in recipe.stages:
        c = s.config
        steps = f"{c['stop_after_steps']} of {c['max_steps']}" if c.get("stop_after_steps") else str(c["max_steps"])
        extra = ", ".join(f"`{d}`" for d in c.get("extra_train_dirs", [])) or "-"
        rows.append(f"| {s.number} | `{s.config_file}` | `{s.run}` | {steps} | {c['batch_size']} | "
                    f"{c['learning_rate']:g} | {extra} | {s.about} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.recipe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="data, stages and steps in order, skipping what is complete")
    start = run.add_mutually_exclusive_group()
    start.add_argument("--from-stage", type=int, default=1, help="leave out the stages before this one")
    start.add_argument("--from-step", metavar="NAME", help="only the steps from this one on (no data, no stage)")
    run.add_argument("--to-step", metavar="NAME", help="leave out the steps after this one")
    run.add_argument("--threads", type=int, help="OMP/MKL threads of every step, synthworld's worker processes")
    run.add_argument("--dry-run", action="store_true", help="log each step and what would happen to it; run nothing")
    run.add_argument("--no-progress", action="store_true", help="hide synthworld's progress bars")
    show = sub.add_parser("show", help="print each stage's merged config")
    show.add_argument("--stage", type=int, help="only this stage's (plain JSON)")
    sub.add_parser("write", help="render every stage's config_file from the recipe")
    data = sub.add_parser("data", help="generate the data sets (all, or those one stage reads)")
    data.add_argument("--stage", type=int)
    data.add_argument("--threads", type=int, help="synthworld's worker processes")
    data.add_argument("--no-progress", action="store_true")
    sub.add_parser("stages", help="print the README's stage table")
    for parser in (run, show, sub.choices["write"], data, sub.choices["stages"]):
        parser.add_argument("recipe", help="a recipe JSON, e.g. configs/recipes/synth_teacher.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    try:
        recipe = load_recipe(args.recipe)
        if args.command == "run":
            dry_run = (lambda argv, env: 0) if args.dry_run else None  # logs every step, runs none
            run_recipe(recipe, args.from_stage, args.threads, not args.no_progress, execute=dry_run,
                       from_step=args.from_step, to_step=args.to_step)
        elif args.command == "show" and args.stage:
            print(render_config(recipe.stage(args.stage).config), end="")
        elif args.command == "show":
            for stage in recipe.stages:
                print(f"# stage {stage.number}: {stage.config_file}\n{render_config(stage.config)}")
        elif args.command == "write":
            changed = write_config_files(recipe)
            print("\n".join(f"wrote {path}" for path in changed) or "every config file is up to date")
        elif args.command == "data":
            stages = [recipe.stage(args.stage)] if args.stage else recipe.stages
            execute_steps(data_steps(recipe, stages, args.threads, not args.no_progress), args.threads)
        else:
            print(stages_markdown(recipe), end="")
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
