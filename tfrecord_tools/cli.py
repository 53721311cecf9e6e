"""What every command-line entry point shares: a user mistake becomes one clear
sentence on stderr and exit code 2, a fault of the machine (disk full, out of
memory, an I/O error) one sentence and exit code 75, never a traceback;
argparse `type=` functions that check numbers and split names where they are
parsed.

Exit codes of every command: 0 done; 1 a check found problems (verify,
inspect); 2 a mistake in the input (arguments, files, folders; a folder in
use by another process); 3 training diverged; 75 a fault of the environment
(disk full, out of memory, input/output error): free the resource and run the
same command again, it resumes; 130 interrupted (Ctrl-C); 141 the reader of
its output went away (`... | head`), as a command killed by SIGPIPE.
"""
import argparse
import errno
import functools
import json
import math
import os
import signal
import sys
import textwrap

from tfrecord_tools.errors import ParameterError, UserError
from tfrecord_tools.quiet import hide_tensorflow_start_up

EXIT_USER = 2
EXIT_ENVIRONMENT = 75  # sysexits' EX_TEMPFAIL: retrying later may succeed
# Errors of the operating system that say the machine, not the input, failed.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                      errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE}
_RETRY = "run the same command again; it resumes where it stopped"


def cli_main(main):
    """Decorate a `main(argv=None)` so that `UserError` (a `ParameterError`
    worded in the command's flags), the faults `fault`
    knows (files, disk, memory, text and JSON that do not parse) and Ctrl-C
    end in one line and an exit code instead of a traceback, a closed stdout
    (`... | head`) ends it quietly, and TensorFlow's start-up lines stay off
    the console unless `--verbose` is given (the wrapper's flag: it is taken
    out of `argv` before `main` parses it)."""

    @functools.wraps(main)
    def wrapper(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        verbose = VERBOSE_FLAG in argv[: argv.index("--")] if "--" in argv else VERBOSE_FLAG in argv
        if verbose:
            argv.remove(VERBOSE_FLAG)
        else:
            # Before anything imports TensorFlow (argument types may). A user's own setting wins.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            hide_tensorflow_start_up()
        try:
            result = main(argv)
            sys.stdout.flush()  # here, so that a closed pipe is met below, not at exit
            return result
        except UserError as error:
            text = error.worded() if isinstance(error, ParameterError) else error
            print(f"{program_name(main.__module__)}: error: {text}", file=sys.stderr)
            sys.exit(EXIT_USER)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:
            _stop_on_closed_pipe()
        except SystemExit as done:
            if done.code == 0 and {"-h", "--help"} & set(argv):
                try:
                    print(VERBOSE_HELP)
                    sys.stdout.flush()
                except BrokenPipeError:  # `--help | head`
                    _stop_on_closed_pipe()
            raise
        except Exception as error:  # noqa: BLE001 -- only the faults `fault` names; others are bugs and raise
            known = fault(error)
            if known is None:
                raise
            sentence, code = known
            print(f"{program_name(main.__module__)}: error: {sentence}", file=sys.stderr)
            sys.exit(code)

    return wrapper


def _stop_on_closed_pipe():
    """The reader went away (`| head`): stop quietly, as a command killed by SIGPIPE."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = f"every command also takes {VERBOSE_FLAG}: show TensorFlow's start-up log lines (hidden otherwise)"


def fault(error):
    """(one sentence, exit code) for an exception that is a fault of the
    input or of the machine rather than a bug: OSError, MemoryError,
    UnicodeDecodeError, malformed JSON, and TensorFlow's
    ResourceExhaustedError, DataLossError and NotFoundError. None for
    anything else."""
    if isinstance(error, OSError) and error.errno is not None:
        where = " ".join(str(name) for name in (error.filename, error.filename2) if name)
        what = f"{error.strerror or error}" + (f": {where}" if where else "")
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk is full ({what}); free space, then {_RETRY}", EXIT_ENVIRONMENT
        if error.errno in ENVIRONMENT_ERRNOS:
            return f"the system failed ({what}); once that is mended, {_RETRY}", EXIT_ENVIRONMENT
        return f"{what}", EXIT_USER
    if isinstance(error, MemoryError):
        return f"out of memory; use a smaller batch or fewer workers, or free memory, then {_RETRY}", EXIT_ENVIRONMENT
    if isinstance(error, UnicodeDecodeError):
        return f"a file that should be UTF-8 text is not ({error.reason} at byte {error.start})", EXIT_USER
    if isinstance(error, json.JSONDecodeError):
        return f"a JSON file is malformed ({error}); it was altered or damaged", EXIT_USER
    return _tensorflow_fault(error)


def _tensorflow_fault(error):
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None or not isinstance(error, tensorflow.errors.OpError):
        return None
    message = " ".join(str(error.message).split())
    # TF prefixes the op and device ({{function_node ...}} name): the file and the reason follow.
    message = message.split("}} ", 1)[-1].split(" [Op:", 1)[0]
    message = message if len(message) <= 300 else message[:297] + "..."
    if isinstance(error, tensorflow.errors.ResourceExhaustedError):
        if "No space left on device" in message or "Disk quota" in message:
            return f"the disk is full ({message}); free space, then {_RETRY}", EXIT_ENVIRONMENT
        return (f"out of memory ({message}); use a smaller batch or image size, or free memory, then {_RETRY}",
                EXIT_ENVIRONMENT)
    if isinstance(error, tensorflow.errors.DataLossError):
        return f"a file is damaged ({message})", EXIT_USER
    if isinstance(error, tensorflow.errors.NotFoundError):
        return f"not found ({message})", EXIT_USER
    return None


def program_name(module: str) -> str:
    """The command as the user typed it, for usage lines and error messages:
    the console script's `fgtf train` (it sets sys.argv[0] to the command),
    else `python -m <module>` (a package's `__main__` module is named as its
    package; `__main__` itself as the module Python runs it as)."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if " " in invoked:  # a console script's "<script> <command>"
        return invoked
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:  # run as a script file
            return invoked or "python"
        module = spec.name
    return f"python -m {module.removesuffix('.__main__')}"


def command_parser(module: str, description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """An argument parser named as `program_name(module)` says, with
    `HelpFormatter`: call it with the command module's `__name__`."""
    return argparse.ArgumentParser(prog=program_name(module), description=description,
                                   formatter_class=HelpFormatter, **kwargs)


class HelpFormatter(argparse.HelpFormatter):
    """`--help` whose description keeps its layout: paragraphs (split at blank
    lines) of plain text are wrapped to the terminal, paragraphs of indented
    lines or `*` / `-` items (examples, lists) print as written. Each flag's
    help ends with its default once: except flags without one (None or
    empty), on-off switches (they take no value), and flags whose help
    already says it (`(default: ...)`) or says what happens when they are
    left out."""

    def _fill_text(self, text, width, indent):
        paragraphs = textwrap.dedent(text).strip("\n").split("\n\n")
        return "\n\n".join(paragraph if _written_layout(paragraph)
                           else textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                              subsequent_indent=indent)
                           for paragraph in paragraphs)

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default in (None, argparse.SUPPRESS, "") or not action.option_strings or action.nargs == 0
                or "(default" in text):
            return text
        return text + " (default: %(default)s)"


def _written_layout(paragraph):
    """Whether a description paragraph is laid out by hand (indented lines, list items)."""
    return any(line[:1].isspace() or line.lstrip().startswith(("* ", "- ")) for line in paragraph.splitlines())


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
