"""Outside text (URLs, upstream errors) made fit to show: one line, bounded, secrets masked.

No Django import: the status page, the chat replies and the notifications all use it.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?<=://)[^\s/@]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:[\w.-]*[_.-])?"
    r"(?:api_?key|key|token|secret|passw(?:or)?d|pwd|sig|signature|auth|authorization"
    r"|credentials?|session(?:id)?)=)[^&;#\s\"']*"
)


def redact(text: str) -> str:
    """``text`` without URL credentials or the values of token-like query parameters."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub("***@", text))


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut text ends with "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, limit: int) -> str:
    """``text`` with its whitespace runs (newlines too) as single spaces, then :func:`cut`."""
    return cut(" ".join(text.split()), limit)
