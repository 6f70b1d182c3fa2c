"""The error of the Hub export and upload: a `UserInputError`, so that the CLI prints it as one line."""

from ..errors import UserInputError


class HubError(UserInputError):
    """A folder cannot be exported or uploaded as asked; the message names the folder or file, then the problem."""
