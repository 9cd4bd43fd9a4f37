"""`gamerec models list | promote VERSION | rollback`: the model registry from a shell; `gamerec keys create NAME |
list | revoke NAME`: the write keys of `POST /events` (the `write_keys` table in the table store).

Uses the same environment as the assets and the API (GAMEREC_HOME, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL, ...).
A failure is one line on stderr and exit code 2; `list` marks broken versions instead of failing on them.
"""

from __future__ import annotations

import argparse
import json
import sys

from gamerec_assets import backends
from gamerec_assets.recsys.model_artifact import ArtifactError
from gamerec_assets.settings import Settings
from gamerec_assets.store import ModelRegistry, RegistryError
from gamerec_assets.store.artifact_store import ArtifactStoreError
from gamerec_assets.store.registry import MODEL_NAME, check_version
from gamerec_assets.store.table_store import TableStoreError
from gamerec_assets.store.write_keys import WriteKeyError, WriteKeys

EXIT_ERROR = 2


def _registry() -> ModelRegistry:
    """Promote and rollback refuse a version claiming events beyond the events table (read only when loading)."""
    storage = Settings.from_env().storage
    return backends.registry(storage, MODEL_NAME, lambda: backends.event_store(storage).last_seq())


def models_list(args: argparse.Namespace) -> int:
    registry = _registry()
    versions = registry.versions()
    try:
        production, alias_error = registry.production(), None
    except RegistryError as exc:  # still list the versions: they are what an operator needs to repair it
        production, alias_error = None, str(exc)
    if args.json:
        listing = {"production": production, "versions": [v.__dict__ for v in versions]}
        print(json.dumps({**listing, "alias_error": alias_error} if alias_error else listing, indent=2))
    else:
        print(f"registry: {registry.store.describe()}/{registry.name}")
        if not versions:
            print(f"no model versions yet: materialize {registry.name} first")
        for v in versions:
            mark = "*" if v.version == production else "!" if v.problem else " "
            if v.problem:
                print(f"{mark} {v.version}  BROKEN: {v.problem}")
                continue
            ndcg = v.metrics.get("validation", {}).get("ndcg@10")
            score = f"{ndcg:.4f}" if isinstance(ndcg, float) else "-"
            print(f"{mark} {v.version}  created {v.created_at}  validation ndcg@10 {score}  {v.parameters}")
    if alias_error:
        print(f"gamerec: error: {alias_error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def models_promote(args: argparse.Namespace) -> int:
    version = check_version(args.version)  # before any storage is touched
    state = _registry().promote(version, reason="cli promote")
    print(f"production -> {state['version']} (previous: {', '.join(state['previous'][:3]) or 'none'})")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    state = _registry().rollback()
    print(f"production -> {state['version']} ({state['reason']})")
    return 0


def _keys() -> WriteKeys:
    return WriteKeys(backends.table_store(Settings.from_env().storage))


def keys_create(args: argparse.Namespace) -> int:
    key = _keys().create(args.name)
    print(key)
    print(
        f"write key {args.name!r} created: send it as `Authorization: Bearer <key>` on POST /events. It is shown "
        "only now (only its hash is stored).",
        file=sys.stderr,
    )
    return 0


def keys_list(args: argparse.Namespace) -> int:
    keys = _keys().list()
    if args.json:
        print(json.dumps([k.__dict__ for k in keys], indent=2))
        return 0
    if not keys:
        print("no write keys yet: `gamerec keys create NAME`")
    for k in keys:
        state = "active" if k.active else f"revoked {_when(k.revoked_us)}"
        print(f"{k.name}  created {_when(k.created_us)}  {state}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    changed = _keys().revoke(args.name)
    print(f"write key {args.name!r} {'revoked' if changed else 'was already revoked'}: API workers refuse it within "
          f"GAMEREC_WRITE_KEYS_TTL ({Settings.from_env().ingest.keys_ttl:g} s)")  # fmt: skip
    return 0


def _when(us: int | None) -> str:
    import datetime as dt

    return "-" if us is None else dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamerec", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    models = sub.add_parser("models", help="the item_similarity model registry")
    cmds = models.add_subparsers(dest="command", required=True)
    ls = cmds.add_parser("list", help="versions, newest last; * marks production, ! a broken version")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=models_list)
    promote = cmds.add_parser("promote", help="point production at VERSION (validated in full first)")
    promote.add_argument("version")
    promote.set_defaults(func=models_promote)
    cmds.add_parser("rollback", help="point production back at the version it replaced").set_defaults(
        func=models_rollback
    )
    _keys_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (RegistryError, ArtifactStoreError, ArtifactError, OSError, TableStoreError, WriteKeyError) as exc:
        print(f"gamerec: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _keys_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="write keys for POST /events (stored hashed in the table store)")
    cmds = keys.add_subparsers(dest="command", required=True)
    create = cmds.add_parser("create", help="create a key named NAME and print it (once)")
    create.add_argument("name")
    create.set_defaults(func=keys_create)
    ls = cmds.add_parser("list", help="every key's name, creation time and state (never the key)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=keys_list)
    revoke = cmds.add_parser("revoke", help="revoke key NAME (API workers refuse it within GAMEREC_WRITE_KEYS_TTL)")
    revoke.add_argument("name")
    revoke.set_defaults(func=keys_revoke)


if __name__ == "__main__":
    sys.exit(main())
