"""The error type of bad input, as opposed to bugs.

Every problem with what the user gave (a file, an option, a spec, a seed) raises an
``InputError`` (or one of its subclasses: ConfigError, CheckpointError, DatasetError, ...)
whose message names the input and the fix. The CLI prints those as one line and exits 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

# Write failures that are the disk's, not a bug: full, over quota, file too large, read-only.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class InputError(ValueError):
    """A problem with the user's input; the message names the input and what to do."""


__all__ = ["DISK_ERRNOS", "InputError"]
