"""What every command-line entry point shares: a user mistake becomes one clear
sentence on stderr and exit code 2, never a traceback; argparse `type=`
functions that check numbers and split names where they are parsed."""
import argparse
import functools
import math
import os
import sys


class UserError(ValueError):
    """A mistake in the user's input (arguments, files, folders). The message is
    one sentence that says what is wrong and, where possible, how to fix it."""


def cli_main(main):
    """Decorate a `main(argv=None)` so that `UserError` (and Ctrl-C) exit cleanly."""

    @functools.wraps(main)
    def wrapper(argv=None):
        # Before anything imports TensorFlow (argument types may): its C++
        # start-up lines are noise to a user. A user's own setting wins.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            return main(argv)
        except UserError as error:
            print(f"{program_name(main)}: error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def program_name(main):
    """The command as the user typed it, as argparse's usage line names it:
    `fgtf train` under the console script (which sets sys.argv[0] so),
    else `python -m fgtf.train` for the module that defines `main` (also
    when it runs as `__main__`, or is called from Python; a package's
    `__main__` module is named as its package)."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if invoked.startswith("fgtf "):
        return invoked
    module = main.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:  # run as a script file
            return invoked or "python"
        module = spec.name
    return f"python -m {module.removesuffix('.__main__')}"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default, except flags without one (None),
    whose help says what happens when they are left out."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


# --- argparse types: a bad value is refused by argparse itself (one line, exit 2)

def positive_int(text):
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1, got {text}")
    return value


def non_negative_int(text):
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 0, got {text}")
    return value


def positive_float(text):
    """A finite number > 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
    return value


def non_negative_float(text):
    """A finite number >= 0."""
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


SPLITS = ("train", "validation")


def split_name(text):
    """`train` or `validation` (`val` is accepted and means `validation`)."""
    split = {"val": "validation"}.get(text, text)
    if split not in SPLITS:
        raise argparse.ArgumentTypeError(f"unknown split {text!r}; choose train or validation (or val)")
    return split
