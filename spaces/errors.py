"""The one exception type for space problems a user can cause (unknown name, bad file)."""


class SpaceError(ValueError):
    """A user-facing error about a search space; its message is one line saying what to do."""
