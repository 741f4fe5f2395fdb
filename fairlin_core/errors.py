"""Error types that carry a user-facing message (what was wrong, what was expected).

The CLI turns every :class:`FairLinError` into one line on stderr and exit code 2; the UI shows the
message as is. Anything else is a bug and keeps its traceback.
"""


class FairLinError(Exception):
    """Bad input from a user: the message says what was wrong and what was expected."""


class DatasetError(FairLinError):
    """A dataset is missing, malformed or asked for with invalid options."""


class CheckpointError(FairLinError):
    """A checkpoint file or its sidecar is missing, corrupt, unsafe or inconsistent."""


class ModelError(FairLinError):
    """A model name or model option is not valid."""
