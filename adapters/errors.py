"""The one error type a user is shown: something they typed, chose, uploaded or set is wrong.

The page shows its message, the command line prints it as one line and exits with code 2. Everything else is
a bug or an outage: logged with its traceback, and shown to the user only as an internal error. It is a
`ValueError`, as every such mistake is a wrong value, so callers that validate values keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix, with a message that says what and where (file, line, field, setting)."""
