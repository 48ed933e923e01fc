"""What was loaded, in forms tests compare: counts per /api/meta key, and every row."""

from __future__ import annotations


def counts() -> dict[str, int]:
    """Loaded rows under the names the sample upstream's /api/meta uses."""
    from ingest.models import Item, Observation, Quest, QuestRequirement, QuestReward, Trade

    return {
        "items": Item.objects.count(),
        "quests": Quest.objects.count(),
        "required_links": QuestRequirement.objects.filter(item__isnull=False).count(),
        "reward_links": QuestReward.objects.filter(item__isnull=False).count(),
        "trades": Trade.objects.count(),
        "observations": Observation.objects.count(),
    }


def snapshot() -> list[tuple[object, ...]]:
    """Every loaded row with the columns a rewrite would change (timestamps included)."""
    from ingest.models import Item, Observation, QuestRequirement, Trade

    rows: list[tuple[object, ...]] = []
    rows += Item.objects.order_by("id").values_list("id", "name", "value", "updated_at")
    rows += Observation.objects.order_by("id").values_list("id", "value", "observed_at")
    rows += QuestRequirement.objects.order_by("id").values_list("id", "item_id", "quantity")
    rows += Trade.objects.order_by("id").values_list("id", "price")
    return rows
