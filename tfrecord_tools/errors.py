"""The error this package's functions raise for input they cannot take."""


class UserError(ValueError):
    """A mistake in the caller's input (arguments, files, folders). The
    message is one sentence that says what is wrong and, where possible, how
    to fix it; a command line prints it and exits with code 2."""
