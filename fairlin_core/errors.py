"""Error types that carry a user-facing message (what was wrong, what was expected).

The CLI turns every :class:`FairLinError` into one line on stderr and exit code 2; the UI shows the
message as is. Anything else is a bug and keeps its traceback. Messages echo user input through
:func:`brief` (never whole), paths through :func:`shown`; :func:`check_seed` is the one seed check of the
CLI, configs and API.
"""

import numbers


class FairLinError(Exception):
    """Bad input from a user: the message says what was wrong and what was expected."""


class DatasetError(FairLinError):
    """A dataset is missing, malformed or asked for with invalid options."""


class CheckpointError(FairLinError):
    """A checkpoint file or its sidecar is missing, corrupt, unsafe or inconsistent."""


class ModelError(FairLinError):
    """A model name or model option is not valid."""


ECHO_LIMIT = 80  # characters of user input a message echoes at most


def brief(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full length noted, so a
    100,000-character name never fills the terminal: ``'aaaa…' (100000 characters)``."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
    return f"{text[:limit]}… ({length})"


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` (e.g. names joined by commas) cut like :func:`brief`, without the quotes."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def shown(path: object, limit: int = 120) -> str:
    """A path for a message, its middle elided when long (a 100,000-character name is not echoed whole)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]} ({len(text)} characters)"


def one_line(message: str, limit: int = 2000) -> str:
    """A message as one line (whitespace runs, newlines included, become one space), at most ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "…"


MAX_SEED = 2**63 - 1  # seeds are integers in [0, MAX_SEED]: what torch, numpy and SQLite all take


def check_seed(seed: object, name: str = "seed", error: type[FairLinError] = FairLinError) -> int:
    """``seed`` as an int in ``[0, MAX_SEED]`` (negative seeds are refused everywhere), else ``error``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise error(f"{name} must be a non-negative integer (at most 2**63 - 1), got {brief(seed)}")
    return int(seed)
