"""The one exception type for problems with a user's data."""


class DatasetError(ValueError):
    """A dataset, archive or image file cannot be used as given.

    The message always names the offending path (or archive member) and says
    what would fix it, so the CLI can print it without a stack trace.
    """
