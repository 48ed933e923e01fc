"""The sample upstream: a deterministic fake market served over HTTP (same seed, same bytes).

``build_app(UpstreamConfig(...))`` returns a plain ASGI app for uvicorn; ``etl upstream``
serves it. See ``upstream.app`` for the HTTP behaviour (ETag, gzip, latency,
fault injection, request counters) and ``upstream.data`` for the data model.
"""

from __future__ import annotations

from upstream.app import UpstreamApp
from upstream.data import Market, UpstreamConfig

__all__ = ["Market", "UpstreamApp", "UpstreamConfig", "build_app"]


def build_app(config: UpstreamConfig, *, market: Market | None = None) -> UpstreamApp:
    """The ASGI app serving ``config``'s market.

    ``market`` may be given to observe the data model (tests count generator calls).
    """
    return UpstreamApp(config, market)
