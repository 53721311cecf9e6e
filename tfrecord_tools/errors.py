"""The errors this package's functions raise for input they cannot take."""
import re

# A parameter named in a ParameterError's message: an identifier in backticks.
_PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class UserError(ValueError):
    """A mistake in the caller's input (arguments, files, folders). The
    message is one sentence that says what is wrong and, where possible, how
    to fix it; a command line prints it and exits with code 2."""


class ParameterError(UserError):
    """A mistake in the value of a parameter the message names. Written with
    each parameter name in backticks (``"`image_size` 4 is too small"``), it
    reads as the library's parameters (`image_size 4 is too small`), and a
    command line words it in its flags with `worded` (`--image_size 4 is too
    small`)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(self.worded(lambda name: name))

    def worded(self, spell=lambda name: f"--{name}") -> str:
        """The message with each parameter name spelled by `spell` (default:
        the flag of the same name, as fgtf's commands name their flags)."""
        return _PARAMETER.sub(lambda match: spell(match.group(1)), self.message)
