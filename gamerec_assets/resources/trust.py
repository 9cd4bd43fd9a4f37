"""`EventTrustResource`: the thresholds of `recsys.event_trust` (how far training trusts players' events), from the
settings (GAMEREC_TRUST_*, GAMEREC_EVENTS_BURST_*), and the production model they are measured against."""

from __future__ import annotations

import io

import dagster as dg
import numpy as np

from gamerec_assets.recsys.event_trust import Champion, TrustParams, champion_from
from gamerec_assets.recsys.model_artifact import ARRAYS
from gamerec_assets.store.artifact_store import ArtifactStoreError
from gamerec_assets.store.registry import ModelRegistry, RegistryError


class EventTrustResource(dg.ConfigurableResource):
    """`recsys.event_trust.TrustParams` as a resource (what each field means is documented there)."""

    min_events: int = TrustParams.min_events
    burst_window_s: float = TrustParams.burst_window_s
    burst_new_users: int = TrustParams.burst_new_users
    game_growth: float = TrustParams.game_growth
    game_floor: int = TrustParams.game_floor

    def params(self, enabled: bool = True) -> TrustParams:
        return TrustParams(
            self.min_events, self.burst_window_s, self.burst_new_users, self.game_growth, self.game_floor, enabled
        )


def production_champion(registry: ModelRegistry) -> tuple[Champion, str | None, str | None]:
    """The production model's `Champion` (its events' until_seq and per-game audience: the popularity array, read
    from its arrays file alone, never a pickle), its version, and why it could not be read (None when it could).

    No production model, or one that cannot be read: `Champion()`, the strict side (every user outside the base
    source is new, each game's audience is its base players), so a broken version never loosens the rules nor
    blocks a refresh."""
    version = registry.production()
    if version is None:
        return Champion(), None, None
    try:
        manifest = registry.manifest(version)
        raw = registry.store.get(f"{registry.name}/{version}/{ARRAYS}")
        with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
            item_ids, popularity = np.asarray(arrays["item_ids"]), np.asarray(arrays["popularity"])
        if item_ids.shape != popularity.shape:
            raise ValueError(f"{ARRAYS} has {len(item_ids)} items and {len(popularity)} counts")
    except (RegistryError, ArtifactStoreError, ValueError, KeyError, OSError) as exc:
        return Champion(), version, f"production {version} unreadable ({exc}): measured as if there were none"
    return champion_from(manifest, item_ids, popularity), version, None
