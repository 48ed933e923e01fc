"""Probes and scrapes answered before Django validates the ``Host`` header.

Kubernetes' kubelet and Prometheus address a pod by its IP (``Host: 10.1.2.3:8000``),
which ``DJANGO_ALLOWED_HOSTS`` rightly does not list, so ``CommonMiddleware`` would
answer them 400 and a healthy pod would never become ready. This middleware comes first
and serves ``GET``/``HEAD`` of ``/healthz``, ``/readyz`` and ``/metrics`` itself; they
read no request data and reveal no secrets. Every other path keeps the host check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from etl import views

View = Callable[[HttpRequest], Awaitable[HttpResponse]]

PROBES: dict[str, View] = {
    "/healthz": views.healthz,
    "/readyz": views.readyz,
    "/metrics": views.metrics,
}


class ProbeMiddleware:
    """Serve the probe endpoints whatever the ``Host``; pass everything else on."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: View) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return await view(request)
        return await self.get_response(request)
