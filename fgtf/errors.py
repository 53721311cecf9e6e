"""The errors fgtf's library raises for inputs it cannot take, each a
`ValueError` (as scikit-learn's and POT's are), so a caller can catch one kind
of mistake by its type rather than by its message."""


class InputSizeError(ValueError):
    """An image size a network cannot take: below its smallest (`smallest`),
    or a token grid that does not fit a Swin stage's windows (`smallest`
    None). `size` is the size asked for."""

    def __init__(self, message, size=None, smallest=None):
        super().__init__(message)
        self.size, self.smallest = size, smallest
