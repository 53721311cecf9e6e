"""What every command-line entry point shares: a user mistake becomes one clear
sentence on stderr and exit code 2, never a traceback."""
import functools
import sys


class UserError(ValueError):
    """A mistake in the user's input (arguments, files, folders). The message is
    one sentence that says what is wrong and, where possible, how to fix it."""


def cli_main(main):
    """Decorate a `main(argv=None)` so that `UserError` (and Ctrl-C) exit cleanly."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as error:
            prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "fgtf"
            print(f"{prog}: error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
