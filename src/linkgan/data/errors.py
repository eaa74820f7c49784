"""The one exception type for problems with a user's data."""

from ..errors import InputError


class DatasetError(InputError):
    """A dataset, archive or image file cannot be used as given.

    The message always names the offending path (or archive member) and says
    what would fix it, so the CLI can print it without a stack trace.
    """


# How many file names one warning or error lists before summarising the rest.
NAMES_SHOWN = 10


def name_list(names: list[str]) -> str:
    """'a, b, c, ... (7 more)': the first NAMES_SHOWN names of a list of bad files."""
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return shown + (f", ... ({more} more)" if more > 0 else "")
