from __future__ import annotations
from typing import Any
def current() -> Any:
    return None
