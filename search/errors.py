"""The one exception type for mistakes a user can make on the command line or through the API."""


class UsageError(ValueError):
    """A user-facing error: the CLI prints its one-line message and exits 2, writing nothing."""
