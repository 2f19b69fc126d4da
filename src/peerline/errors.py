"""The base of every error peerline raises on purpose.

A `UsageError` is the user's mistake (exit code 2, one line); any other
`PeerlineError` is a failure we can explain in one line (exit code 1). Anything
else escaping to the command line is a bug and keeps its traceback.
"""


class PeerlineError(Exception):
    """Something went wrong that one sentence explains to the user."""

    exit_code = 1


class UsageError(PeerlineError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2
