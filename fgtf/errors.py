"""The errors fgtf's library raises for inputs it cannot take. Each is a
`ValueError` (as scikit-learn's and POT's are) and a `UserError`, the one
base the command lines turn into one sentence and exit code 2; a caller
catches one kind of mistake by its type rather than by its message. The
library's messages name its parameters, not the commands' flags: a
`ParameterError` is worded in flags by the command that prints it."""
from tfrecord_tools.errors import ParameterError, UserError

__all__ = ["UserError", "ParameterError", "InputSizeError", "TrainingDiverged"]


class InputSizeError(UserError):
    """An image size a network cannot take: below its smallest (`smallest`),
    or a token grid that does not fit a Swin stage's windows (`smallest`
    None). `size` is the size asked for."""

    def __init__(self, message, size=None, smallest=None):
        super().__init__(message)
        self.size, self.smallest = size, smallest


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (`fgtf.training.train`); nothing was
    saved after the last good checkpoint."""
