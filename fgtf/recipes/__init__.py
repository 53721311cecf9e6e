"""Recipes: one TOML file per published experiment in `recipes/` at the
repository root, run by the command it names with its settings as the
defaults of that command's flags.

    fgtf recipes                   every recipe: paper, dataset, reported top-1, what still differs
    fgtf recipes sef_cub           one recipe resolved: each stage as the command it runs, what differs
    fgtf train --recipe sef_cub --dataset_dir data/cub_200 --run_dir runs/sef_cub \\
        --checkpoint checkpoints/resnet50-19c8e357.pth [flags]
    fgtf simtrans --recipe simtrans_cub --dataset_dir data/cub_web --run_dir runs/simtrans_cub \\
        --checkpoint checkpoints/resnet50-19c8e357.pth [flags]

Flags given on the command line override the recipe's (in every stage that
takes them; `--checkpoint` is the first stage's start weights). A recipe of
stages runs them in order, each of `fgtf train` into `<run_dir>/<stage>`
(a stage that names `from` starts from that stage's run), each of
`fgtf simtrans` as its step in the one run folder; a stage that finished
with the same settings is skipped, an unfinished one resumes. The resolved
settings of every stage go to `<run_dir>/recipe.json` with the recipe's name,
file and checksum and the flags given.

A recipe file (names and values checked against the command's own parser):

    command = "train"             the fgtf command that runs it: train or simtrans
    dataset = "CUB-200-2011"      the paper's dataset, as it names it
    reported_top1 = 87.3          percent as the paper reports it; left out where no file at hand has it
    reported_as = "..."           what that number is (best epoch on the test set, ten views, ...)
    checkpoint = "..."            the start weights the first stage expects as --checkpoint (left out:
                                  none, as a recipe that trains from scratch)
    original_command = "..."      the original's command line (script and flags)
    gpu_hours = 4.0               a rough figure from the paper's settings
    differs = ["...", ...]        what still differs from the original, with the original's value
    notes = ["...", ...]          choices the original leaves open, and which one the recipe takes
    [paper]                       name (the method's, or the authors'), title, venue, year, table (the
                                  table and row it reproduces)
    [settings]                    the command's flags (names without --) and values, for every stage:
                                  strings, numbers, true / false for a switch, lists for comma lists
    [[stage]]                     optional, in order: name, from (an earlier stage), step (simtrans's
    [stage.settings]              subcommand; default: the name) and the stage's own flags
"""
# The package: this module reads, checks, resolves and runs recipes for a command that gives its
# RecipeCommand (fgtf.train's, fgtf.simtrans's); __main__.py is `fgtf recipes`.
import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import shlex
import tomllib
from typing import Callable, Optional

from fgtf.errors import UserError

# The repository's recipes/ (this file is fgtf/recipes/__init__.py).
RECIPE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes")
RECIPE_RECORD = "recipe.json"
# Where a run's data, folder and start weights are (with their aliases): the
# user's to give, never a recipe's (a recipe describes its start weights in
# its `checkpoint` entry).
LOCATION_FLAGS = ("--dataset_dir", "--run_dir", "--checkpoint", "--recipe")
# Flags naming the same setting in two units: given one on the command line,
# the recipe's other one is dropped (e.g. --max_number_of_steps 3 on a recipe
# of --epochs 50). Pairs an argparse mutually exclusive group makes are found there.
ALTERNATIVES = (("epochs", "max_number_of_steps"),)
# The commands a recipe may name -> the module that declares its RecipeCommand as RECIPE_COMMAND.
# Imported when a recipe needs it (`command_of`), as fgtf.cli imports a command's module to run it:
# the commands build on this module, not it on them.
COMMAND_MODULES = {"train": "fgtf.train", "simtrans": "fgtf.simtrans.__main__"}
_TOP_KEYS = {"command": str, "dataset": str, "reported_top1": (int, float), "reported_as": str, "checkpoint": str,
             "original_command": str, "gpu_hours": (int, float), "differs": list, "notes": list, "paper": dict,
             "settings": dict, "stage": list}
_REQUIRED = ("command", "dataset", "original_command", "differs", "paper")
_PAPER_KEYS = ("name", "title", "venue", "year", "table")
_STAGE_KEYS = {"name": str, "from": str, "step": str, "settings": dict}


class RecipeError(UserError):
    """A recipe that cannot be read or run: a missing file, a malformed one, or
    a flag or value its command does not take."""


@dataclasses.dataclass(frozen=True)
class RecipeCommand:
    """What recipes need of a command that runs them (`fgtf.train.RECIPE_COMMAND`,
    `fgtf.simtrans.__main__.RECIPE_COMMAND`): its `name` (a recipe's
    `command`); `parser(stage)`, the argument parser of a stage; `plan(recipe,
    stage, flags, dests)`, the stage's `Plan` from its parsed flags
    (`dests`: {option: destination}); `step_names`, the subcommands when each
    stage is one (SimTrans's steps), else ()."""
    name: str
    parser: Callable
    plan: Callable
    step_names: tuple = ()


def command_of(recipe) -> RecipeCommand:
    """The `RecipeCommand` of the command that runs `recipe` (a `Recipe`)."""
    return _command(recipe.command)


def _command(name):
    return importlib.import_module(COMMAND_MODULES[name]).RECIPE_COMMAND


@dataclasses.dataclass(frozen=True)
class Stage:
    """One run of a recipe's command: `settings` are its flags (the recipe's
    shared ones with the stage's own over them); `start_from` the earlier
    stage whose run it starts from; `step` simtrans's subcommand."""
    name: str
    settings: dict
    start_from: Optional[str] = None
    step: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A recipe file read by `load_recipe` (its keys: this module's docstring)."""
    name: str
    path: str
    command: str
    paper: dict
    dataset: str
    original_command: str
    differs: tuple
    stages: tuple
    reported_top1: Optional[float] = None
    reported_as: str = ""
    checkpoint: Optional[str] = None
    gpu_hours: Optional[float] = None
    notes: tuple = ()

    @property
    def staged(self):
        """True when the recipe names its stages (each then runs in its own folder or step)."""
        return len(self.stages) > 1 or self.stages[0].name != self.name


def list_recipes(folder=RECIPE_DIR):
    """The names of the recipes in `folder` (the repository's recipes/), sorted."""
    if not os.path.isdir(folder):
        return []
    return sorted(name[:-len(".toml")] for name in os.listdir(folder) if name.endswith(".toml"))


def load_recipe(name_or_path):
    """The `Recipe` of a name in recipes/ or of a .toml file; RecipeError when
    it is missing or malformed (one sentence naming the file and the key)."""
    path = name_or_path if name_or_path.endswith(".toml") or os.sep in name_or_path else os.path.join(
        RECIPE_DIR, name_or_path + ".toml")
    if not os.path.isfile(path):
        known = ", ".join(list_recipes()) or "(none)"
        raise RecipeError(f"no recipe {name_or_path!r}: give a name of recipes/ ({known}) or a .toml file")
    with open(path, "rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise RecipeError(f"recipe {path} is not valid TOML ({error})") from None
    return _recipe_of(data, path)


def recipe_table(recipes, differs=False):
    """The text of `fgtf recipes`: one row per recipe (with `differs`, its
    differences from the original under it)."""
    rows = [("recipe", "paper", "dataset", "top-1", "stages", "differs")]
    for recipe in recipes:
        paper = recipe.paper
        rows.append((recipe.name, f"{paper['name']} ({paper['venue']} {paper['year']})",
                     recipe.dataset, _top1(recipe), str(len(recipe.stages)), str(len(recipe.differs))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if differs and index:
            lines += [f"    - {item}" for item in recipes[index - 1].differs]
    lines.append("")
    lines.append("top-1: as the paper reports it (-: not in the files at hand); differs: what fgtf does not yet "
                 "run as the original did (--differs lists them). `fgtf recipes NAME` shows one in full.")
    return "\n".join(lines)


def describe(recipe, command):
    """The text of `fgtf recipes NAME`: the recipe resolved, each stage as the
    command line it runs (its flags checked against the command's parser)."""
    paper = recipe.paper
    lines = [f"{recipe.name}  ({os.path.relpath(recipe.path)})",
             f"paper:     {paper['title']} ({paper['venue']} {paper['year']})",
             f"table:     {paper['table']}",
             f"dataset:   {recipe.dataset}",
             f"top-1:     {_top1(recipe)}" + (f"  ({recipe.reported_as})" if recipe.reported_as else ""),
             f"original:  {recipe.original_command}"]
    if recipe.checkpoint:
        lines.append(f"start:     {recipe.checkpoint}")
    if recipe.gpu_hours is not None:
        lines.append(f"GPU-hours: about {recipe.gpu_hours:g}")
    lines.append("")
    base = "fgtf " + recipe.command + f" --recipe {recipe.name} --dataset_dir DIR --run_dir RUN" + (
        " --checkpoint FILE" if recipe.checkpoint else "")
    lines.append(f"run:       {base}")
    for stage in recipe.stages:
        check_stage(recipe, stage, command)
        where = (f"RUN/{stage.name}" if recipe.command == "train" and recipe.staged else "RUN")
        start = f" --checkpoint RUN/{stage.start_from}" if stage.start_from else ""
        label = f"stage {stage.name}:" if recipe.staged else "runs:"
        command = f"fgtf {recipe.command}{' ' + stage.step if stage.step else ''} --run_dir {where}{start}"
        lines.append(f"{label}\n  {command} " + " ".join(flag_tokens(stage.settings)))
    for title, items in (("differs", recipe.differs), ("notes", recipe.notes)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
    return "\n".join(lines)


def flag_tokens(settings):
    """A stage's settings as command-line tokens (`--flag value`, a switch alone when true)."""
    tokens = []
    for key, value in settings.items():
        if value is True:
            tokens.append(f"--{key}")
        elif value is not False:
            tokens += [f"--{key}", shlex.quote(_text(value))]
    return tokens


def check_stage(recipe, stage, command):
    """The parser of `stage`'s command with the stage's settings as its
    defaults; RecipeError naming the flag when the command does not take one
    of them or its value."""
    parser = command.parser(stage)
    _apply(parser, recipe, stage, given=set())
    return parser


def recipe_requested(argv):
    """True when a command line asks for `--recipe` (before any `--`)."""
    for token in argv:
        if token == "--":
            return False
        if token == "--recipe" or token.startswith("--recipe="):
            return True
    return False


def run_recipe(command, argv):
    """`fgtf <command> --recipe NAME ...` (`command` a `RecipeCommand`):
    resolve every stage of the recipe with the command line's flags over its
    settings, run the stages in order (a stage that finished with the same
    settings is skipped) and record them in `<run_dir>/recipe.json` as each
    stage ends, so that a command line the first stage refuses leaves no run
    folder behind."""
    name, rest = _take_recipe(argv)
    recipe = load_recipe(name)
    if recipe.command != command.name:
        raise RecipeError(f"recipe {recipe.name} is run by fgtf {recipe.command}: fgtf {recipe.command} --recipe "
                          f"{recipe.name} ...")
    plans = _plans(recipe, rest, command)
    run_dir = plans[0].run_dir
    record_path = os.path.join(run_dir, RECIPE_RECORD)
    previous = _read_record(record_path)
    record = {"recipe": recipe.name, "file": os.path.abspath(recipe.path), "sha256": _sha256(recipe.path),
              "command_line": [f"fgtf {command.name}", *argv],
              "stages": [{"name": plan.stage.name, "run_dir": plan.stage_dir, "settings": plan.resolved}
                         for plan in plans]}
    from fgtf.fileio import write_json

    for plan in plans:
        if plan.finished() and plan.resolved in _recorded_settings(previous, plan.stage.name):
            print(f"[recipe {recipe.name}] stage {plan.stage.name} finished before with these settings "
                  f"({plan.stage_dir}); skipped", flush=True)
        else:
            if recipe.staged:
                print(f"[recipe {recipe.name}] stage {plan.stage.name} -> {plan.stage_dir}", flush=True)
            plan.run()
        os.makedirs(run_dir, exist_ok=True)
        write_json(record_path, record)


@dataclasses.dataclass
class Plan:
    """One stage resolved: its parsed flags, where it runs, and how."""
    stage: Stage
    flags: argparse.Namespace
    run_dir: str
    stage_dir: str
    run: Callable[[], object]
    finished: Callable[[], bool]

    @property
    def resolved(self):
        return json.loads(json.dumps(vars(self.flags), default=list))


def _plans(recipe, argv, command):
    """Every stage of `recipe` resolved against `argv` (the command line
    without --recipe) by `command`; errors surface before any stage runs."""
    takes_value = _step_options(recipe, argv, command) if command.step_names else None
    plans = []
    for stage in recipe.stages:
        parser = command.parser(stage)
        tokens = _tokens_for(parser, argv, takes_value) if takes_value else argv
        _apply(parser, recipe, stage, given=_given(parser, tokens))
        flags = parser.parse_args(tokens)
        plans.append(command.plan(recipe, stage, flags, _dests(parser)))
    return plans


def check_start(recipe, flags, dests):
    """A recipe that names its start weights needs them given as --checkpoint."""
    if recipe.checkpoint and not getattr(flags, dests["--checkpoint"]):
        raise RecipeError(f"recipe {recipe.name} starts from {recipe.checkpoint}: give it as --checkpoint FILE")


def _dests(parser):
    """{option string: destination} of `parser`'s flags."""
    return {option: action.dest for action in parser._actions for option in action.option_strings}


def _apply(parser, recipe, stage, given):
    """Set the stage's settings as `parser`'s defaults, each converted and
    checked as the flag's own type and choices would; settings whose
    alternative the command line gives (`given`: destinations) are left out."""
    by_option = {option: action for action in parser._actions for option in action.option_strings}
    locations = {by_option[option].dest for option in LOCATION_FLAGS if option in by_option}
    dropped = {partner for dest in given for partner in _partners(parser, dest)}
    defaults = {}
    for key, value in stage.settings.items():
        where = f"recipe {recipe.name} ({recipe.path}){f', stage {stage.name}' if recipe.staged else ''}"
        option = f"--{key}"
        action = by_option.get(option)
        if action is None:
            raise RecipeError(f"{where} sets {option}, which {_command_name(recipe, stage)} does not take")
        if action.dest in locations:
            raise RecipeError(f"{where} sets {option}, which is the user's to give on the command line")
        if action.dest not in dropped:
            defaults[action.dest] = _converted(action, value, f"{where}: {option}")
    parser.set_defaults(**defaults)


def _converted(action, value, where):
    """`value` (from TOML) as the flag of `action` would parse it."""
    if action.nargs == 0:  # a switch: store_true / store_false
        if not isinstance(value, bool):
            raise RecipeError(f"{where} is a switch: give true or false, not {value!r}")
        return action.const if value else not action.const
    if isinstance(value, (bool, dict)) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
        raise RecipeError(f"{where} takes a value, not {value!r}")
    text = _text(value)
    try:
        converted = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
        raise RecipeError(f"{where} {text!r} is not valid: {error or 'not a ' + action.type.__name__}") from None
    if action.choices is not None and converted not in action.choices:
        raise RecipeError(f"{where} {text!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


def _text(value):
    """A TOML value as its command-line text (a list joined by commas)."""
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _partners(parser, dest):
    """The destinations naming the same setting as `dest` in another unit:
    its mutually exclusive group's others and `ALTERNATIVES`."""
    partners = set()
    for group in parser._mutually_exclusive_groups:
        dests = {action.dest for action in group._group_actions}
        if dest in dests:
            partners |= dests - {dest}
    for pair in ALTERNATIVES:
        if dest in pair:
            partners |= set(pair) - {dest}
    return partners


def _given(parser, tokens):
    """The destinations of the flags in `tokens` (abbreviations resolved as argparse does)."""
    options = {option: action for action in parser._actions for option in action.option_strings}
    given = set()
    for token in tokens:
        if token == "--":
            break
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            matches = {options[name].dest} if name in options else {
                action.dest for option, action in options.items() if option.startswith(name)}
            if len(matches) == 1:
                given |= matches
    return given


def _tokens_for(parser, argv, takes_value):
    """The flags (with their values) of `argv` that `parser` takes: simtrans's
    steps share one command line, each reads its own flags from it.
    `takes_value`: {option: whether it is followed by a value} of every step."""
    options = {option for action in parser._actions for option in action.option_strings}
    kept, index = [], 0
    while index < len(argv):
        name, inline = argv[index].partition("=")[::2]
        width = 1 if inline or not takes_value[name] else 2
        if name in options:
            kept += argv[index:index + width]
        index += width
    return kept


def _step_options(recipe, argv, command):
    """{option: takes a value} of every step of the recipe (for a command
    whose stages are its subcommands); RecipeError for a token of `argv` that
    no step takes, a step's name, or a value without a flag."""
    takes_value = {option: action.nargs != 0 for stage in recipe.stages
                   for action in command.parser(stage)._actions for option in action.option_strings}
    index = 0
    while index < len(argv):
        token = argv[index]
        name, inline = token.partition("=")[::2]
        if token in command.step_names:
            raise RecipeError(f"fgtf {command.name} --recipe runs every step of {recipe.name} in order: give no step "
                              f"name ({token}); each step reads its own flags from the command line")
        if not token.startswith("--"):
            raise RecipeError(f"{token!r} follows no flag; give flags as --name value")
        if name not in takes_value:
            raise RecipeError(f"no step of recipe {recipe.name} takes {name}")
        index += 1 if inline or not takes_value[name] else 2
    return takes_value


def _command_name(recipe, stage):
    return f"fgtf {recipe.command}" + (f" {stage.step}" if stage.step else "")


def _take_recipe(argv):
    """(the --recipe value, the other tokens)."""
    rest = []
    name = None
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--recipe":
            if index + 1 >= len(argv):
                raise RecipeError("--recipe needs a recipe name or a .toml file (fgtf recipes lists them)")
            name, index = argv[index + 1], index + 2
            continue
        if token.startswith("--recipe="):
            name = token.split("=", 1)[1]
        else:
            rest.append(token)
        index += 1
    return name, rest


def _read_record(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError:
            return None


def _recorded_settings(record, stage_name):
    """The settings a previous recipe.json recorded for a stage (a list: empty when none)."""
    if not isinstance(record, dict):
        return []
    return [stage.get("settings") for stage in record.get("stages", []) if stage.get("name") == stage_name]


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _top1(recipe):
    return "-" if recipe.reported_top1 is None else f"{recipe.reported_top1:.1f}"


def _recipe_of(data, path):
    """Check the TOML contents of a recipe file and make its `Recipe`."""
    name = os.path.basename(path)[:-len(".toml")] if path.endswith(".toml") else os.path.basename(path)
    where = f"recipe {path}"
    for key, value in data.items():
        if key not in _TOP_KEYS:
            raise RecipeError(f"{where} has an unknown key {key!r} (known: {', '.join(_TOP_KEYS)})")
        if not isinstance(value, _TOP_KEYS[key]) or isinstance(value, bool):
            raise RecipeError(f"{where}: {key} must be {_kind(_TOP_KEYS[key])}, not {value!r}")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise RecipeError(f"{where} does not give {', '.join(missing)}")
    if data["command"] not in COMMAND_MODULES:
        raise RecipeError(f"{where}: command must be one of {', '.join(COMMAND_MODULES)}, not {data['command']!r}")
    paper = data["paper"]
    absent = [key for key in _PAPER_KEYS if key not in paper]
    if absent:
        raise RecipeError(f"{where}: [paper] does not give {', '.join(absent)}")
    for key in ("differs", "notes"):
        if not all(isinstance(item, str) for item in data.get(key, [])):
            raise RecipeError(f"{where}: {key} must be a list of sentences")
    stages = _stages_of(data, name, where)
    return Recipe(name=name, path=path, command=data["command"], paper=dict(paper), dataset=data["dataset"],
                  original_command=data["original_command"], differs=tuple(data["differs"]), stages=stages,
                  reported_top1=data.get("reported_top1"), reported_as=data.get("reported_as", ""),
                  checkpoint=data.get("checkpoint"), gpu_hours=data.get("gpu_hours"),
                  notes=tuple(data.get("notes", ())))


def _stages_of(data, name, where):
    shared = data.get("settings", {})
    steps = _command(data["command"]).step_names  # a command whose stages are its subcommands (simtrans)
    simtrans = bool(steps)
    if simtrans and ("stage" not in data or shared):
        raise RecipeError(f"{where}: a simtrans recipe lists its steps as [[stage]] tables, each with its own "
                          f"[stage.settings] (no shared [settings]: the steps take different flags)")
    if "stage" not in data:
        return (Stage(name, dict(shared)),)
    stages, names = [], []
    for table in data["stage"]:
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise RecipeError(f"{where}: every [[stage]] needs a name")
        for key, value in table.items():
            if key not in _STAGE_KEYS or not isinstance(value, _STAGE_KEYS[key]):
                raise RecipeError(f"{where}: stage {table['name']} has {key} = {value!r} (a stage takes "
                                  f"name, from, step and a [stage.settings] table)")
        stage_name = table["name"]
        if stage_name in names or not stage_name.replace("_", "").replace("-", "").isalnum():
            raise RecipeError(f"{where}: stage name {stage_name!r} is repeated or not a plain folder name")
        start_from = table.get("from")
        if start_from is not None and (start_from not in names or simtrans):
            raise RecipeError(f"{where}: stage {stage_name} starts from {start_from!r}, which is not an earlier "
                              f"stage" + (" (simtrans's steps share one run folder; they take no from)"
                                          if simtrans else ""))
        step = table.get("step", stage_name) if simtrans else None
        if "step" in table and not simtrans:
            raise RecipeError(f"{where}: stage {stage_name} names a step, which only simtrans recipes have")
        if simtrans and step not in steps:
            raise RecipeError(f"{where}: stage {stage_name} is no simtrans step ({', '.join(steps)})")
        names.append(stage_name)
        stages.append(Stage(stage_name, {**shared, **table.get("settings", {})}, start_from, step))
    return tuple(stages)


def _kind(kinds):
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {str: "a text", int: "a number", float: "a number", list: "a list", dict: "a table"}
    return " or ".join(sorted({names[k] for k in kinds}))

