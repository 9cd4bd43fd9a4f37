"""Versioned model registry on an artifact store, with a `production` alias that can be promoted and rolled back.

Layout (`<name>` is the asset, `item_similarity`):
    <name>/<version>/similarity.npz     write-once
    <name>/<version>/manifest.json      written last: a version without it is incomplete and never listed
    <name>/_aliases/production.json     {"version", "previous": [...], "updated_at", "reason"}

The alias object is the only thing the API reads to find its model. Moving it is one atomic object write, so a
reader sees the old or the new version, never a mix; a failed publish leaves the alias where it was.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gamerec_assets.recsys.model_artifact import ARRAYS, MANIFEST, ModelArtifact
from gamerec_assets.store.artifact_store import ArtifactNotFound, ArtifactStore

MODEL_NAME = "item_similarity"  # the registry of the served model, named after the asset that publishes it
ALIAS = "production"
KEEP_PREVIOUS = 20


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, nothing to roll back to)."""


def new_version() -> str:
    """Sortable by time, unique across concurrent writers."""
    return f"v{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created_at: str
    parameters: dict[str, Any]
    metrics: dict[str, Any]


class ModelRegistry:
    def __init__(self, store: ArtifactStore, name: str = "item_similarity") -> None:
        self.store = store
        self.name = name

    def _alias_key(self, alias: str = ALIAS) -> str:
        return f"{self.name}/_aliases/{alias}.json"

    def publish(self, artifact: ModelArtifact, version: str | None = None) -> str:
        """Write a new immutable version (arrays first, manifest last) and return its name. Does not promote."""
        version = version or new_version()
        artifact.manifest["version"] = version
        files = artifact.to_files()
        self.store.put(f"{self.name}/{version}/{ARRAYS}", files[ARRAYS])
        self.store.put(f"{self.name}/{version}/{MANIFEST}", files[MANIFEST])
        return version

    def manifest(self, version: str) -> dict[str, Any]:
        try:
            return json.loads(self.store.get(f"{self.name}/{version}/{MANIFEST}"))
        except ArtifactNotFound as exc:
            raise RegistryError(f"model version {version!r} does not exist (or is incomplete)") from exc

    def load(self, version: str) -> ModelArtifact:
        manifest_bytes = json.dumps(self.manifest(version)).encode()
        arrays = self.store.get(f"{self.name}/{version}/{ARRAYS}")
        return ModelArtifact.from_files({MANIFEST: manifest_bytes, ARRAYS: arrays})

    def versions(self) -> list[VersionInfo]:
        """Complete versions, oldest first."""
        out = []
        for key in self.store.list(self.name):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST and not parts[1].startswith("_"):
                m = json.loads(self.store.get(key))
                out.append(
                    VersionInfo(parts[1], m.get("created_at", ""), m.get("parameters", {}), m.get("metrics", {}))
                )
        return sorted(out, key=lambda v: v.version)

    def alias(self, alias: str = ALIAS) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get(self._alias_key(alias)))
        except ArtifactNotFound:
            return None

    def production(self) -> str | None:
        state = self.alias()
        return state["version"] if state else None

    def promote(self, version: str, reason: str = "manual") -> dict[str, Any]:
        self.manifest(version)  # raises RegistryError when the version does not exist
        state = self.alias() or {"version": None, "previous": []}
        if state["version"] == version:
            return state
        previous = ([state["version"]] if state["version"] else []) + list(state.get("previous", []))
        new_state = {
            "version": version,
            "previous": previous[:KEEP_PREVIOUS],
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason,
        }
        self.store.replace(self._alias_key(), json.dumps(new_state, indent=2).encode())
        return new_state

    def rollback(self) -> dict[str, Any]:
        """Point production back at the version it replaced, in one atomic write."""
        state = self.alias()
        if not state or not state.get("previous"):
            raise RegistryError(f"nothing to roll back to: {self.name} has no previous production version")
        target, *rest = state["previous"]
        self.manifest(target)
        new_state = {
            "version": target,
            "previous": rest,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": f"rollback from {state['version']}",
        }
        self.store.replace(self._alias_key(), json.dumps(new_state, indent=2).encode())
        return new_state
