"""`gamerec models list | promote VERSION | rollback`: the model registry from a shell.

Uses the same environment as the assets and the API (GAMEREC_HOME, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import argparse
import json
import sys

from gamerec_assets.settings import Settings
from gamerec_assets.store import MODEL_NAME, ModelRegistry, RegistryError
from gamerec_assets.store.artifact_store import ArtifactStoreError


def _registry() -> ModelRegistry:
    return ModelRegistry(Settings.from_env().storage.artifact_store(), MODEL_NAME)


def models_list(args: argparse.Namespace) -> int:
    registry = _registry()
    production = registry.production()
    versions = registry.versions()
    if args.json:
        print(json.dumps({"production": production, "versions": [v.__dict__ for v in versions]}, indent=2))
        return 0
    print(f"registry: {registry.store.describe()}/item_similarity")
    if not versions:
        print("no model versions yet: materialize item_similarity first")
    for v in versions:
        ndcg = v.metrics.get("validation", {}).get("ndcg@10")
        mark = "*" if v.version == production else " "
        score = f"{ndcg:.4f}" if isinstance(ndcg, float) else "-"
        print(f"{mark} {v.version}  created {v.created_at}  validation ndcg@10 {score}  {v.parameters}")
    return 0


def models_promote(args: argparse.Namespace) -> int:
    state = _registry().promote(args.version, reason="cli promote")
    print(f"production -> {state['version']} (previous: {', '.join(state['previous'][:3]) or 'none'})")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    state = _registry().rollback()
    print(f"production -> {state['version']} ({state['reason']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamerec", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    models = sub.add_parser("models", help="the item_similarity model registry")
    cmds = models.add_subparsers(dest="command", required=True)
    ls = cmds.add_parser("list", help="versions, newest last; * marks production")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=models_list)
    promote = cmds.add_parser("promote", help="point production at VERSION")
    promote.add_argument("version")
    promote.set_defaults(func=models_promote)
    cmds.add_parser("rollback", help="point production back at the version it replaced").set_defaults(
        func=models_rollback
    )
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (RegistryError, ArtifactStoreError) as exc:
        print(f"gamerec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
