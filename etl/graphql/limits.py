"""What a client may ask for at most: page size, depth, aliases, tokens, introspection.

strawberry-django 0.93 caps pages itself (``PAGINATION_MAX_LIMIT``, 100 unless
``settings.STRAWBERRY_DJANGO`` says otherwise, and ``None`` there means "all"). The cap
is a security property of this API, so it is enforced here whatever that setting holds;
the library's own cap can only make pages smaller, never larger.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, SchemaExtension, max_aliases
from strawberry.extensions import query_depth_limiter as depth
from strawberry.types.arguments import StrawberryArgument
from strawberry_django.fields.field import StrawberryDjangoField
from strawberry_django.ordering import ORDERING_ARG
from strawberry_django.pagination import OffsetPaginationInput

PAGE_CAP = 100
"""The most rows any list field returns, top-level or nested, whatever the client asks."""

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
MASKED_MESSAGE = "Unexpected error."

_QS = TypeVar("_QS", bound="models.QuerySet[Any]")

# strawberry's QueryDepthLimiter and MaxAliasesLimiter build new rule classes for every
# operation, which would make every operation a miss in the validation cache (keyed by
# the rules). The same rules, built once:
_RULES = (depth.create_validator(MAX_DEPTH, None), max_aliases.create_validator(MAX_ALIASES))


class DepthAndAliases(AddValidationRules):
    """At most ``MAX_DEPTH`` levels and ``MAX_ALIASES`` aliases in an operation."""

    def __init__(self) -> None:
        super().__init__(list(_RULES))


def page_size(requested: int | None) -> int:
    """The rows a list returns for a requested ``limit``: ``None`` and negatives mean the cap."""
    if requested is None or requested < 0:
        return PAGE_CAP
    return min(requested, PAGE_CAP)


def _with_tiebreak(queryset: _QS) -> _QS:
    # `order: {count: DESC}` alone leaves ties in any order, so page 2 could repeat rows of
    # page 1; the primary key makes every ordering total.
    ordering = list(queryset.query.order_by)
    if ordering and not any(key in ("pk", "-pk") for key in ordering):
        return queryset.order_by(*ordering, "pk")
    return queryset


class CappedField(StrawberryDjangoField):
    """A strawberry-django field whose lists never exceed :data:`PAGE_CAP` rows.

    It also names the ordering argument ``order``, the contract's name, while keeping the
    library's list-of-one-of ``ordering`` input behind it. ``get_queryset`` is left
    alone on purpose: the library resolves prefetched relations on the event loop (no
    thread hop) only while ``get_queryset`` is its own.
    """

    _renamed: list[StrawberryArgument] | None = None

    @property
    def arguments(self) -> list[StrawberryArgument]:
        arguments = super().arguments
        # Read once per resolved field: rename only when the library rebuilt its list.
        if arguments is not self._renamed:
            for argument in arguments:
                if argument.python_name == ORDERING_ARG:
                    argument.graphql_name = "order"
            self._renamed = arguments
        return arguments

    @arguments.setter
    def arguments(self, value: list[StrawberryArgument]) -> None:
        StrawberryDjangoField.arguments.fset(self, value)  # type: ignore[attr-defined]

    def apply_pagination(
        self,
        queryset: _QS,
        pagination: object | None = None,
        *,
        related_field_id: str | None = None,
    ) -> _QS:
        if isinstance(pagination, OffsetPaginationInput):
            if pagination.offset < 0:
                raise GraphQLError("pagination.offset must not be negative")
            limit = pagination.limit if isinstance(pagination.limit, int) else None
            pagination = OffsetPaginationInput(offset=pagination.offset, limit=page_size(limit))
        elif self.is_list:
            # Nested lists have no pagination argument: cap them too (per parent row).
            pagination = OffsetPaginationInput(offset=0, limit=PAGE_CAP)
        if pagination is not None and not queryset.query.is_sliced:
            queryset = _with_tiebreak(queryset)
        return super().apply_pagination(queryset, pagination, related_field_id=related_field_id)


def should_mask(error: GraphQLError) -> bool:
    """Mask errors raised by our code or Django; keep parse, validation and client errors."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class IntrospectionOnlyInDebug(SchemaExtension):
    """Refuse ``__schema``/``__type`` unless ``settings.DEBUG``, read on every operation."""

    def on_operation(self) -> Iterator[None]:
        if not settings.DEBUG:
            rules = self.execution_context.validation_rules
            self.execution_context.validation_rules = (*rules, NoSchemaIntrospectionCustomRule)
        yield
