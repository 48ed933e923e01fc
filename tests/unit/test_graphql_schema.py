"""The GraphQL schema without a database: contract names, page sizes, error masking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLError, build_schema
from graphql.type import GraphQLNamedType, GraphQLObjectType

from etl.graphql import limits
from etl.graphql.schema import schema

# DESIGN.md, "GraphQL (read-only)": clients rely on these names.
CONTRACT = {
    "Query": "items item quests trades itemStats sources nodes counts",
    "Counts": "items observations quests trades sources failingSources",
    "ItemStats": "item avg min max count computedAt",
    "Quest": "key title image text required rewards",
    "QuestRequirement": "quantity item quest",
    "QuestReward": "quantity item quest",
    "Item": "key name image value stats requiredFor rewardFor",
    "Source": "url parser schedule shard lastStatus lastError lastFetchedAt rowsLoaded",
    "Node": "name slot heartbeatAt alive",
    "Trade": "id item itemKey price quantity tradedAt",
}
ARGUMENTS = {
    "items": {"filters", "order", "pagination"},
    "item": {"key"},
    "quests": {"filters", "pagination"},
    "trades": {"since", "limit"},
    "itemStats": {"filters", "order", "pagination"},
    "sources": {"filters", "pagination"},
    "nodes": set(),
    "counts": set(),
}


def _type(name: str) -> GraphQLNamedType:
    named = build_schema(schema.as_str()).get_type(name)
    assert named is not None, name
    return named


@pytest.mark.parametrize(("type_name", "fields"), CONTRACT.items())
def test_contract_field_names(type_name: str, fields: str) -> None:
    named = _type(type_name)
    assert isinstance(named, GraphQLObjectType)
    assert set(fields.split()) <= set(named.fields)


def test_query_arguments() -> None:
    query = _type("Query")
    assert isinstance(query, GraphQLObjectType)
    assert {name: set(field.args) for name, field in query.fields.items()} == ARGUMENTS


def test_there_are_no_mutations_or_subscriptions() -> None:
    sdl = schema.as_str()
    assert "type Mutation" not in sdl
    assert "type Subscription" not in sdl


CAP = limits.PAGE_CAP


@pytest.mark.parametrize(
    ("requested", "rows"),
    [
        (None, CAP),
        (-1, CAP),
        (-7, CAP),
        (0, 0),
        (3, 3),
        (CAP, CAP),
        (10_000, CAP),
        (2**31 - 1, CAP),
    ],
)
def test_page_size_never_exceeds_the_cap(requested: int | None, rows: int) -> None:
    assert limits.page_size(requested) == rows


def test_only_internal_errors_are_masked() -> None:
    assert limits.should_mask(GraphQLError("boom", original_error=RuntimeError("db password")))
    assert not limits.should_mask(GraphQLError("Cannot query field 'x' on type 'Item'."))
    client_error = GraphQLError("pagination.offset must not be negative")
    assert not limits.should_mask(GraphQLError("wrapped", original_error=client_error))


def test_schema_imports_without_a_database() -> None:
    repo = Path(__file__).resolve().parents[2]
    # An unreachable database proves importing and printing the schema never connects.
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    code = (
        "import django; django.setup(); "
        "from etl.graphql.schema import schema; import etl.urls; "
        "print('itemStats(' in schema.as_str())"
    )
    env["DJANGO_SETTINGS_MODULE"] = "etl.settings"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
