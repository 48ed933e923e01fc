"""A sample-upstream market that counts item generation (proves pages are lazy)."""

from __future__ import annotations

from upstream import Market, UpstreamConfig, data


class CountingMarket(Market):
    """Counts calls of the per-item generator, to prove pages are built lazily."""

    def __init__(self, config: UpstreamConfig) -> None:
        super().__init__(config)
        self.item_calls = 0

    def item(self, index: int) -> data.Item:
        self.item_calls += 1
        return super().item(index)
