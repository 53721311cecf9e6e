"""The library never goes through a command: outside the command entry points
(fgtf/cli.py, a package's __main__.py, and the `main` / `_main` functions of a
module), no fgtf code exits the process or calls a command's `main`; the
command-line kit (fgtf.command_line, built on tfrecord_tools.cli) is imported
by commands only, library code raising the errors of fgtf.errors."""
import ast
from pathlib import Path

import pytest

FGTF = Path(__file__).resolve().parents[1] / "fgtf"
ENTRY_FUNCTIONS = {"main", "_main"}
EXITS = {("sys", "exit"), ("os", "_exit")}
KIT, GENERIC_KIT = "fgtf.command_line", "tfrecord_tools.cli"
# Library modules that declare command-line flags as part of what they define:
# they take the generic argparse types of tfrecord_tools.cli (a layer below them).
DECLARE_FLAGS = {"fgtf/models/heads/__init__.py"}  # each head's own flags (HeadFlag)


def _library_modules():
    return sorted(path for path in FGTF.rglob("*.py") if path.name != "__main__.py" and path.name != "cli.py")


def _calls_outside_entry_points(tree):
    """(line, what) of each process exit or command call outside the entry functions of `tree`."""
    found = []

    def visit(node, inside_entry):
        for child in ast.iter_child_nodes(node):
            entry = inside_entry or (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                                     and child.name in ENTRY_FUNCTIONS and isinstance(node, ast.Module))
            if not entry and isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                owner = child.func.value
                name = owner.id if isinstance(owner, ast.Name) else None
                if (name, child.func.attr) in EXITS:
                    found.append((child.lineno, f"{name}.{child.func.attr}"))
                elif child.func.attr == "main" and name is not None:
                    found.append((child.lineno, f"{name}.main"))
            if not entry and isinstance(child, ast.Call) and isinstance(child.func, ast.Name) \
                    and child.func.id in ("exit", "quit"):
                found.append((child.lineno, child.func.id))
            visit(child, entry)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", _library_modules(), ids=lambda path: str(path.relative_to(FGTF.parent)))
def test_library_code_neither_exits_nor_runs_a_command(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = _calls_outside_entry_points(tree)
    assert not found, f"{path.relative_to(FGTF.parent)}: " + ", ".join(f"line {line}: {what}" for line, what in found)


def test_the_check_finds_exits_and_command_calls_outside_entry_points():
    code = ("import sys\n"
            "def helper():\n    sys.exit(2)\n"
            "def study():\n    evaluate.main(['--checkpoint', 'run'])\n"
            "def main(argv=None):\n    sys.exit(0)\n"
            "@cli_main\ndef _main(argv=None):\n    train.main(argv)\n")
    assert _calls_outside_entry_points(ast.parse(code)) == [(3, "sys.exit"), (5, "evaluate.main")]


@pytest.mark.parametrize("path", sorted(FGTF.rglob("*.py")), ids=lambda path: str(path.relative_to(FGTF.parent)))
def test_only_commands_import_the_command_line_kit(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = _imported_modules(tree)
    where = str(path.relative_to(FGTF.parent))
    if where != "fgtf/command_line.py" and where not in DECLARE_FLAGS:
        assert GENERIC_KIT not in imported, f"{where} takes the kit from {GENERIC_KIT}; use {KIT} (errors: fgtf.errors)"
    if KIT in imported:
        assert _is_command(path, tree), f"{where} is library code but imports {KIT}"


def _imported_modules(tree):
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def _is_command(path, tree):
    return path.name in ("__main__.py", "cli.py", "command_line.py") or any(
        isinstance(node, ast.FunctionDef) and node.name in ENTRY_FUNCTIONS for node in tree.body)
