"""Who owns a URL: ``stable_hash(url) % N == slot``.

Python's ``hash()`` is salted per process (PYTHONHASHSEED), so two nodes would disagree
about ownership; blake2b of the URL's bytes is the same everywhere and for ever.
"""

from __future__ import annotations

import hashlib


def stable_hash(url: str) -> int:
    """A non-negative 63-bit hash of the URL's UTF-8 bytes (fits a Postgres bigint)."""
    digest = hashlib.blake2b(url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def owner(url: str, node_count: int) -> int:
    """The slot that owns ``url`` in a cluster of ``node_count`` slots."""
    if node_count < 1:
        raise ValueError(f"node_count must be at least 1, got {node_count}")
    return stable_hash(url) % node_count
