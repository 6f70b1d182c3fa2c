"""The one error type for bad user input, so that every command reports it the same way.

Library functions raise [`UserInputError`] (a `ValueError`) when a file, record or option given by the user is wrong.
Its message starts with what is wrong, as the user wrote it (a path, `path: record`, or an option such as
`--top-k`), then says the problem: `videos/a.mp4: cannot decode frame 12`. The CLI prints it as one line,
`error: <message>`, and exits with status 2. Anything else is a bug and keeps its traceback.
"""


class UserInputError(ValueError):
    """A file, record or option given by the user is wrong; the message names it first, then the problem."""


__all__ = ["UserInputError"]
