"""Who owns a URL: ``stable_hash(url) % N == slot``, the one home of that rule.

Python's ``hash()`` is salted per process (PYTHONHASHSEED), so two nodes would disagree
about ownership; blake2b of the URL's bytes is the same everywhere and for ever. A
source stores its hash (``Source.shard_hash``, filled in at registration through the
placement hook this app installs in ``ingest.sources``); the rule is then written once
for each place that evaluates it:

* :func:`slot_of` — in Python (``etl sources list``, tests);
* :func:`slot_expr` / :func:`shard_q` — as an ORM expression (admin, GraphQL, metrics);
* :func:`slot_sql` — as SQL text (the claim statement, shard sizes).

N itself has one definition too: :func:`cluster.membership.cluster_size`.
"""

from __future__ import annotations

import hashlib

from django.db import models
from django.db.models.lookups import Exact


def stable_hash(url: str) -> int:
    """A non-negative 63-bit hash of the URL's UTF-8 bytes (fits a Postgres bigint)."""
    digest = hashlib.blake2b(url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def slot_of(shard_hash: int, count: int) -> int:
    """The slot that owns a source with ``shard_hash`` among ``count`` slots."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return shard_hash % count


def slot_expr(count: int | models.Expression) -> models.Expression:
    """:func:`slot_of` as an ORM expression over ``Source.shard_hash``."""
    return models.ExpressionWrapper(
        models.F("shard_hash") % count, output_field=models.BigIntegerField()
    )


def shard_q(slot: int, count: int) -> models.Q:
    """Sources in shard ``slot`` of ``count``."""
    return models.Q(Exact(slot_expr(count), slot))


def slot_sql(table: str, count: str) -> str:
    """:func:`slot_of` as SQL text: ``table``'s shard hash among ``count`` slots (SQL)."""
    return f"mod({table}.shard_hash, {count})"
