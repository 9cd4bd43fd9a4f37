"""Helpers for the service tests: the seeded home; readiness polling and a real uvicorn server (both in
`tests.support`, importable from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gamerec_api.demo import Seeded
from gamerec_assets import backends
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from tests.support.net import free_port
from tests.support.uvicorn_server import serve, wait_ready

__all__ = ["ADMIN_TOKEN", "Home", "free_port", "serve", "wait_ready"]

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class Home:
    path: Path
    settings: StorageSettings
    seeded: Seeded

    def registry(self) -> ModelRegistry:
        return ModelRegistry(backends.artifact_store(self.settings), MODEL_NAME)

    def model(self) -> ServingModel:
        registry = self.registry()
        return ServingModel(registry.load(registry.production()))  # type: ignore[arg-type]
