"""``/static/``: the admin's CSS and JS, served by the node itself.

A node has no web server in front of it, and the admin's few assets do not justify
one. Files are found by the staticfiles finders (the apps' ``static/`` folders: nothing
else is reachable, and no ``collectstatic`` is needed) and answered as plain responses:
a streamed file response would make Django's ASGI handler warn on every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from django.contrib.staticfiles import views
from django.http import FileResponse, HttpRequest, HttpResponse

MAX_AGE = 3600


def serve(request: HttpRequest, path: str) -> HttpResponse:
    """One static file (or 304, or 404), whatever DEBUG says."""
    found = views.serve(request, path, insecure=True)
    if not isinstance(found, FileResponse):
        return found  # 304 Not Modified
    try:
        body = b"".join(cast(Iterator[bytes], found.streaming_content))
    finally:
        found.close()
    response = HttpResponse(body, content_type=found["Content-Type"])
    for header in ("Last-Modified", "Content-Encoding"):
        if header in found:
            response[header] = found[header]
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response
