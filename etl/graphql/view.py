"""``/graphql``: strawberry's async Django view, POST only, GraphiQL only with DEBUG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from etl.graphql.schema import schema


class GraphQLView(AsyncGraphQLView[Any, Any]):
    async def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        # settings.DEBUG is read per request, so tests and operators can flip it.
        if not settings.DEBUG:
            return HttpResponseNotFound("Not Found", content_type="text/plain")
        return await super().render_graphql_ide(request)


def graphql_view() -> Callable[..., Any]:
    """The view for ``path("graphql", …)``.

    CSRF-exempt: the API is read-only and takes no cookie-based identity, so a forged
    cross-site POST can do nothing a plain one could not. Queries via GET are refused
    (GET only serves GraphiQL, in DEBUG), which keeps queries out of access logs and
    caches.
    """
    view = GraphQLView.as_view(schema=schema, graphql_ide="graphiql", allow_queries_via_get=False)
    return csrf_exempt(view)
