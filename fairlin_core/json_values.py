"""Values made strict-JSON-ready for the files FairLin writes (summaries, configs, results metadata)."""

from __future__ import annotations

import math
from typing import Any


def json_ready(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, recursively through dicts, lists and tuples (dict keys become
    strings), so ``json.dumps(..., allow_nan=False)`` accepts the result."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
