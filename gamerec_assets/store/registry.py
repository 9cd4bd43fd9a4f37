"""Versioned model registry on an artifact store, with a `production` alias that can be promoted and rolled back.

Layout (`<name>` is the asset, `item_similarity`):
    <name>/<version>/similarity.npz     write-once
    <name>/<version>/cards.jsonl        write-once: the catalogue cards the version serves (newer versions)
    <name>/<version>/serving.npz        write-once: the histories the version was trained on (newer versions)
    <name>/<version>/manifest.json      written last: a version without it is incomplete and never listed
    <name>/_aliases/production.json     {"version", "previous": [...], "updated_at", "reason"}
    <name>/_aliases/challenger.json     the same, for the version an online experiment runs against production

The alias object is the only thing the API reads to find its model. Moving it is one atomic object write, so a
reader sees the old or the new version, never a mix; a failed publish leaves the alias where it was. Every move is
a compare-and-swap (`ArtifactStore.update`), so concurrent promotes and rollbacks never drop one another's version
from the history. A version is promoted only after it was loaded and validated in full: a checksum-valid but
malformed model (indices past the catalogue) would make the compiled kernels read out of bounds.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gamerec_assets.recsys.manifest_checks import manifest_problems
from gamerec_assets.recsys.model_artifact import ARRAYS, CARDS, MANIFEST, SERVING, ArtifactError, ModelArtifact
from gamerec_assets.store.artifact_store import ArtifactNotFound, ArtifactStore

MODEL_NAME = "item_similarity"  # the registry of the served model, named after the asset that publishes it
ALIAS = "production"
CHALLENGER = "challenger"  # the version an online experiment compares against production
KEEP_PREVIOUS = 20
VERSION_PATTERN = re.compile(r"v\d{8}T\d{6}-[0-9a-f]{6}")  # what new_version() makes


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, nothing to roll back to)."""


class InvalidVersion(RegistryError, ArtifactError):
    """A version exists but is no servable model: unreadable manifest, half-written or structurally invalid arrays."""


def new_version() -> str:
    """Sortable by time, unique across concurrent writers."""
    return f"v{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def check_version(version: object) -> str:
    """The version name, or RegistryError before any storage is touched (no path tricks, no 5,000-character keys)."""
    if isinstance(version, str) and VERSION_PATTERN.fullmatch(version):
        return version
    text = str(version)
    shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
    raise RegistryError(f"invalid model version name {shown}: expected vYYYYMMDDTHHMMSS-xxxxxx (6 hex digits)")


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created_at: str
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    problem: str | None = None  # why the version cannot be served (None: it looks complete)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _history(versions: list[str | None], exclude: str | None) -> list[str]:
    """Most recent first, each version once, never the current one, at most KEEP_PREVIOUS."""
    out: list[str] = []
    for v in versions:
        if v and v != exclude and v not in out:
            out.append(v)
    return out[:KEEP_PREVIOUS]


class ModelRegistry:
    def __init__(
        self, store: ArtifactStore, name: str = MODEL_NAME, events_seq: Callable[[], int | None] | None = None
    ) -> None:
        """`events_seq`: the events table's newest seq (None: unknown), so `load` (and `promote`, `rollback`)
        refuse a version claiming events beyond it (`manifest_checks`); without it only types and signs count."""
        self.store = store
        self.name = name
        self.events_seq = events_seq

    def _alias_key(self, alias: str = ALIAS) -> str:
        return f"{self.name}/_aliases/{alias}.json"

    def _key(self, version: str, file: str) -> str:
        return f"{self.name}/{check_version(version)}/{file}"

    def publish(self, artifact: ModelArtifact, version: str | None = None) -> str:
        """Write a new immutable version (arrays first, manifest last) and return its name. Does not promote.

        A structurally invalid model is refused (InvalidVersion) before anything is written.
        """
        version = check_version(version or new_version())
        artifact.manifest["version"] = version
        try:
            files = artifact.to_files()
        except ArtifactError as exc:
            raise InvalidVersion(f"refusing to publish {self.name} {version}: {exc}") from exc
        for name, raw in files.items():
            if name != MANIFEST:
                self.store.put(self._key(version, name), raw)
        self.store.put(self._key(version, MANIFEST), files[MANIFEST])  # last: the version is complete
        return version

    def _manifest_bytes(self, version: str) -> bytes:
        try:
            return self.store.get(self._key(version, MANIFEST))
        except ArtifactNotFound as exc:
            raise RegistryError(f"model version {version!r} does not exist (or is incomplete)") from exc

    def manifest(self, version: str) -> dict[str, Any]:
        raw = self._manifest_bytes(version)
        try:
            manifest = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidVersion(f"model version {version}: {MANIFEST} is unreadable (truncated?): {exc}") from exc
        if not isinstance(manifest, dict):
            raise InvalidVersion(f"model version {version}: {MANIFEST} is not a JSON object")
        return manifest

    def load(self, version: str) -> ModelArtifact:
        """The artifact, checksum-verified and structurally validated; InvalidVersion when it cannot be served."""
        manifest = self.manifest(version)
        if manifest.get("version") not in (None, version):
            raise InvalidVersion(f"model version {version}: its manifest names version {manifest['version']!r}")
        problems = manifest_problems(manifest, self._newest_event_seq(version))
        if problems:
            raise InvalidVersion(f"model version {version}: implausible manifest: " + "; ".join(problems))
        files = {MANIFEST: json.dumps(manifest).encode()}
        for name in self._files(manifest):
            try:
                files[name] = self.store.get(self._key(version, name))
            except ArtifactNotFound as exc:
                raise InvalidVersion(f"model version {version}: {name} is missing (half-written version)") from exc
        try:
            return ModelArtifact.from_files(files)
        except ArtifactError as exc:
            raise InvalidVersion(f"model version {version}: {exc}") from exc

    def _newest_event_seq(self, version: str) -> int | None:
        if self.events_seq is None:
            return None
        try:
            return self.events_seq()
        except Exception as exc:  # a refusal that says why, rather than a version nobody checked
            raise RegistryError(f"model version {version}: cannot read the newest event seq to check: {exc}") from exc

    @staticmethod
    def _files(manifest: dict[str, Any]) -> list[str]:
        """The files of a version besides its manifest: the arrays, and the serving data when it has some."""
        listed = manifest.get("files")
        listed = listed if isinstance(listed, dict) else {}
        return [ARRAYS, *(name for name in (CARDS, SERVING) if name in listed)]

    def _inspect(self, version: str) -> tuple[dict[str, Any], str | None]:
        """(manifest, problem): a cheap completeness check for listings, the files' bytes are not read."""
        try:
            manifest = self.manifest(version)
        except RegistryError as exc:
            return {}, str(exc)
        for name in self._files(manifest):
            try:
                size = self.store.size(self._key(version, name))
            except ArtifactNotFound:
                return manifest, f"{name} is missing (half-written version)"
            recorded = (manifest.get("sizes") or {}).get(name)
            if recorded is not None and recorded != size:
                return manifest, f"{name} holds {size} bytes, the manifest records {recorded} (truncated)"
        return manifest, None

    def problem(self, version: str) -> str | None:
        """Why `version` cannot be served, from its manifest and the arrays' size (None: it looks complete).

        Only `load` (and so `promote`) proves a version servable: it verifies the checksum and the structure.
        """
        return self._inspect(version)[1]

    def versions(self) -> list[VersionInfo]:
        """Versions that have a manifest, oldest first; broken ones carry `problem` instead of failing the listing."""
        out = []
        for key in self.store.list(self.name):
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != MANIFEST or parts[1].startswith("_"):
                continue
            version = parts[1]
            if not VERSION_PATTERN.fullmatch(version):
                out.append(VersionInfo(version, "", {}, {}, "not a registry version name"))
                continue
            m, problem = self._inspect(version)
            out.append(
                VersionInfo(
                    version,
                    str(m.get("created_at", "")),
                    dict(m.get("parameters") or {}),
                    dict(m.get("metrics") or {}),
                    problem,
                )
            )
        return sorted(out, key=lambda v: v.version)

    def _parse_alias(self, raw: bytes | None, alias: str = ALIAS) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            state = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(
                f"alias {self.store.describe()}/{self._alias_key(alias)} is unreadable (truncated?): {exc}; "
                "repair it, or delete it and promote a version"
            ) from exc
        ok = (
            isinstance(state, dict)
            and isinstance(state.get("version"), str | None)
            and isinstance(state.get("previous", []), list)
            and all(isinstance(v, str) for v in state.get("previous", []))
        )
        if not ok:
            raise RegistryError(f"alias {self._alias_key(alias)} does not hold {{version, previous: [...]}}")
        state.setdefault("previous", [])
        return state

    def alias(self, alias: str = ALIAS) -> dict[str, Any] | None:
        try:
            raw: bytes | None = self.store.get(self._alias_key(alias))
        except ArtifactNotFound:
            raw = None
        return self._parse_alias(raw, alias)

    def production(self) -> str | None:
        state = self.alias()
        return state["version"] if state else None

    def promote(self, version: str, reason: str = "manual") -> dict[str, Any]:
        """Point production at `version` after loading and validating it in full; a refused version leaves the
        alias unchanged. The old production goes to the front of the history."""
        self.load(check_version(version))
        return self._point(ALIAS, version, reason)

    def _point(self, alias: str, version: str | None, reason: str) -> dict[str, Any]:
        """Move `alias` to `version` (None: clear it) in one compare-and-swap, the old target first in its history;
        the alias's state after (unchanged, and not rewritten, when it already pointed there)."""
        result: dict[str, Any] = {}

        def change(raw: bytes | None) -> bytes | None:
            state = self._parse_alias(raw, alias) or {"version": None, "previous": []}
            result.clear()
            if state["version"] == version:
                result.update(state)
                return None
            result.update(
                version=version,
                previous=_history([state["version"], *state["previous"]], exclude=version),
                updated_at=_now(),
                reason=reason,
            )
            return json.dumps(result, indent=2).encode()

        self.store.update(self._alias_key(alias), change)
        return dict(result)

    def challenger(self) -> str | None:
        """The version an online experiment compares against production (alias `challenger`), or None."""
        state = self.alias(CHALLENGER)
        return state["version"] if state else None

    def set_challenger(self, version: str | None, reason: str) -> dict[str, Any]:
        """Point the `challenger` alias at `version` (validated in full first, like `promote`), or clear it (None).

        The experiment record (`store.experiments`) decides what the API routes; this alias names the version for
        the CLI and the catalogue of versions, and is set and cleared with the record."""
        if version is not None:
            self.load(check_version(version))
        return self._point(CHALLENGER, version, reason)

    def rollback(self) -> dict[str, Any]:
        """Point production back at the version it replaced, in one compare-and-swap; refused (alias unchanged) when
        that version cannot be loaded."""
        loaded: set[str] = set()
        result: dict[str, Any] = {}

        def change(raw: bytes | None) -> bytes | None:
            state = self._parse_alias(raw)
            if not state or not state["previous"]:
                raise RegistryError(f"nothing to roll back to: {self.name} has no previous production version")
            target, *rest = state["previous"]
            if target not in loaded:
                self.load(target)
                loaded.add(target)
            result.clear()
            result.update(
                version=target,
                previous=_history(rest, exclude=target),
                updated_at=_now(),
                reason=f"rollback from {state['version']}",
            )
            return json.dumps(result, indent=2).encode()

        self.store.update(self._alias_key(), change)
        return dict(result)

    def delete_version(self, version: str, reason: str) -> list[str]:
        """Delete a version that is neither production nor the challenger (the retention of forgotten players'
        data): its manifest first (from then on it is not listed and cannot load), then its other files; then it
        leaves the aliases' histories (a rollback never targets it). The keys deleted."""
        check_version(version)
        if version in (self.production(), self.challenger()):
            raise RegistryError(f"model version {version} is served ({ALIAS} or {CHALLENGER}): not deleted")
        keys = self.store.list(f"{self.name}/{version}")
        manifest = self._key(version, MANIFEST)
        ordered = [k for k in keys if k == manifest] + [k for k in keys if k != manifest]
        for key in ordered:
            self.store.delete(key)
        for alias in (ALIAS, CHALLENGER):

            def change(raw: bytes | None, alias: str = alias) -> bytes | None:
                state = self._parse_alias(raw, alias)
                if not state or version not in state["previous"]:
                    return None
                previous = [v for v in state["previous"] if v != version]
                return json.dumps({**state, "previous": previous, "pruned": reason}, indent=2).encode()

            if self.store.exists(self._alias_key(alias)):
                self.store.update(self._alias_key(alias), change)
        return ordered

    def load_serving(
        self, version: str | None = None, require_serving: bool = False
    ) -> tuple[ModelArtifact, list[tuple[str, str]]]:
        """The model a fresh server should serve, and the versions skipped on the way as (version, reason).

        Tries `version` (default: production), then the alias's history, most recently served first, and returns
        the first that loads and validates (with `require_serving`, and carries its cards and histories: the API
        serves nothing else). Only unservable versions are skipped; a storage failure (S3 down)
        propagates rather than silently serving an older model. RegistryError when nothing is servable.
        """
        state = self.alias()
        if version is None and state is None:
            raise RegistryError(f"the registry has no {ALIAS} {self.name} model yet")
        candidates = _history([version or (state or {}).get("version"), *((state or {}).get("previous") or [])], None)
        skipped: list[tuple[str, str]] = []
        for candidate in candidates:
            try:
                artifact = self.load(candidate)
                if require_serving and artifact.serving is None:
                    raise InvalidVersion(
                        f"model version {candidate} has no serving data (cards.jsonl, serving.npz): written before "
                        "versions carried their catalogue and histories"
                    )
                return artifact, skipped
            except RegistryError as exc:  # InvalidVersion, a deleted or never-completed version, a bad name
                skipped.append((candidate, str(exc)))
        reasons = "; ".join(f"{v}: {why}" for v, why in skipped) or "no versions"
        raise RegistryError(f"no servable {self.name} version ({reasons})")
