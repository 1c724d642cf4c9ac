"""The one exception type for problems a user can fix (bad config, missing data, NaN loss).

The dispatcher prints its message alone, without a stack trace, because the message already says
what went wrong and what to do.
"""


class DlfpError(Exception):
    """A problem with the user's input or data, stated with what to do about it."""
