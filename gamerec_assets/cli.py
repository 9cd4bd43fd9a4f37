"""`gamerec models list | promote VERSION | rollback`: the model registry from a shell; `gamerec keys create NAME |
list | revoke NAME`: the write keys of `POST /events` (the `write_keys` table in the table store); `gamerec
experiments start | status | set | stop | promote`: online experiments between production and a challenger version;
`gamerec users forget ID | purge`: erase a player, then delete the unserved model versions that still hold a
player forgotten longer than GAMEREC_FORGET_RETENTION_DAYS ago (`store.forgotten_users`, `store.forget_retention`;
README "Forgetting a player").

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
from gamerec_assets.store.experiment_answers import ExperimentAnswers
from gamerec_assets.store.experiments import ExperimentError, ExperimentStore, operator
from gamerec_assets.store.forget_retention import PurgeReport, purge
from gamerec_assets.store.forgotten_users import ForgottenUsers
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
        production, challenger, alias_error = registry.production(), registry.challenger(), None
    except RegistryError as exc:  # still list the versions: they are what an operator needs to repair it
        production, challenger, alias_error = None, None, str(exc)
    if args.json:
        listing = {"production": production, "challenger": challenger, "versions": [v.__dict__ for v in versions]}
        print(json.dumps({**listing, "alias_error": alias_error} if alias_error else listing, indent=2))
    else:
        print(f"registry: {registry.store.describe()}/{registry.name}")
        if not versions:
            print(f"no model versions yet: materialize {registry.name} first")
        for v in versions:
            mark = "*" if v.version == production else "c" if v.version == challenger else "!" if v.problem else " "
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


def _no_experiment(registry: ModelRegistry, action: str) -> None:
    """Moving production under a running experiment would compare the challenger against another model."""
    if (running := ExperimentStore(registry.store, registry.name).current()) is not None:
        raise ExperimentError(
            f"experiment {running.name!r} is running against production {running.production}: `gamerec experiments "
            f"stop` (or `promote`) before {action}"
        )


def models_promote(args: argparse.Namespace) -> int:
    version = check_version(args.version)  # before any storage is touched
    registry = _registry()
    _no_experiment(registry, "promoting another version")
    state = registry.promote(version, reason="cli promote")
    print(f"production -> {state['version']} (previous: {', '.join(state['previous'][:3]) or 'none'})")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    registry = _registry()
    _no_experiment(registry, "rolling back")
    state = registry.rollback()
    print(f"production -> {state['version']} ({state['reason']})")
    return 0


def _experiments(registry: ModelRegistry) -> ExperimentStore:
    return ExperimentStore(registry.store, registry.name)


def _default_name() -> str:
    import datetime as dt

    return "exp-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


def experiments_start(args: argparse.Namespace) -> int:
    """Validate the challenger in full, record the experiment, then point the `challenger` alias at it. API workers
    load and validate it before routing any traffic to it (within the reload interval)."""
    challenger = check_version(args.challenger)
    registry = _registry()
    production = registry.production()
    if production is None:
        raise ExperimentError("no production model yet: materialize the graph (make materialize) first")
    registry.load(challenger)  # refused before anything is recorded
    ExperimentAnswers(backends.table_store(Settings.from_env().storage)).ensure()  # before any worker appends
    exp = _experiments(registry).start(
        args.name or _default_name(), challenger, production, args.traffic, args.mode, by=operator()
    )
    registry.set_challenger(challenger, reason=f"experiment {exp.name} started")
    share = "of users" if exp.mode == "ab" else "of users get interleaved lists"
    print(
        f"experiment {exp.name} started ({exp.mode}): challenger {challenger} vs production {production}, "
        f"{exp.traffic:g} {share}; API workers switch within GAMEREC_RELOAD_INTERVAL"
    )
    return 0


def experiments_status(args: argparse.Namespace) -> int:
    registry = _registry()
    experiments = _experiments(registry).all()
    if args.json:
        print(json.dumps([e.to_json() for e in experiments], indent=2))
        return 0
    if not experiments:
        print("no experiments yet: `.venv/bin/gamerec experiments start --challenger VERSION --traffic 0.1`")
    for e in experiments:
        state = "RUNNING" if e.running else f"{e.status} {e.ended_at}: {e.reason}"
        print(
            f"{e.name}  {e.mode}  challenger {e.challenger} vs production {e.production}  traffic {e.traffic:g}  "
            f"started {e.started_at} by {e.started_by}  {state}"
        )
        for c in e.changes:
            print(f"    {c['at']}  traffic -> {c['traffic']:g}  by {c['by']}")
    return 0


def experiments_set(args: argparse.Namespace) -> int:
    exp = _experiments(_registry()).set_traffic(args.traffic, by=operator())
    print(f"experiment {exp.name}: traffic -> {exp.traffic:g}")
    return 0


def experiments_stop(args: argparse.Namespace) -> int:
    registry = _registry()
    exp = _experiments(registry).end(args.reason, status="stopped", by=operator())
    registry.set_challenger(None, reason=f"experiment {exp.name} stopped")
    print(f"experiment {exp.name} stopped: all traffic back to production {registry.production()}")
    return 0


def experiments_promote(args: argparse.Namespace) -> int:
    """The challenger becomes production (validated in full, one compare-and-swap of the alias, like `models
    promote`), then the experiment is recorded as promoted and the challenger alias cleared. Between the two writes
    both arms serve the same version, so no answer comes from a model that is neither."""
    registry = _registry()
    experiments = _experiments(registry)
    exp = experiments.current()
    if exp is None:
        raise ExperimentError(
            "no experiment is running: nothing to promote (`.venv/bin/gamerec models promote VERSION`)"
        )
    state = registry.promote(exp.challenger, reason=f"experiment {exp.name} promoted")
    experiments.end("challenger promoted", status="promoted", by=operator(), only=exp.name)
    registry.set_challenger(None, reason=f"experiment {exp.name} promoted")
    print(f"experiment {exp.name}: production -> {state['version']} (previous: {exp.production})")
    return 0


def _experiments_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("experiments", help="online experiments: a challenger version against production")
    cmds = group.add_subparsers(dest="command", required=True)
    start = cmds.add_parser("start", help="start an experiment (A/B or interleaving) with a challenger version")
    start.add_argument("--challenger", required=True, help="the model version to compare against production")
    start.add_argument("--traffic", type=float, required=True, help="the challenger's share of users, (0, 1]")
    start.add_argument("--name", help="1-24 characters of a-z, 0-9, '-' (default: exp-<UTC time>)")
    start.add_argument("--mode", choices=["ab", "interleave"], default="ab")
    start.set_defaults(func=experiments_start)
    status = cmds.add_parser("status", help="the running experiment and the ended ones, newest first")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=experiments_status)
    set_ = cmds.add_parser("set", help="change the running experiment's traffic (a canary raised step by step)")
    set_.add_argument("--traffic", type=float, required=True)
    set_.set_defaults(func=experiments_set)
    stop = cmds.add_parser("stop", help="stop the running experiment: all traffic back to production")
    stop.add_argument("--reason", default="operator stop")
    stop.set_defaults(func=experiments_stop)
    cmds.add_parser("promote", help="the challenger becomes production; the experiment ends").set_defaults(
        func=experiments_promote
    )


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


def users_forget(args: argparse.Namespace) -> int:
    """Record the forget (every API worker masks the user within its events poll), then erase the user's rows."""
    if not args.user_id:
        print("gamerec: error: the user id must not be empty", file=sys.stderr)
        return EXIT_ERROR
    forgotten = ForgottenUsers(backends.table_store(Settings.from_env().storage))
    report = forgotten.forget(args.user_id)
    purged = _purge(forgotten)
    if args.json:
        print(json.dumps({"user_id": report.user_id, "seq": report.seq, "until_seq": report.until_seq,
                          "deleted": report.deleted, "versions": purged.__dict__}, indent=2))  # fmt: skip
        return 0
    where = ", ".join(f"{n} from {t}" for t, n in sorted(report.deleted.items())) or "no rows were stored"
    print(f"user {report.user_id!r} forgotten (forget #{report.seq}, events up to seq {report.until_seq}): {where}")
    _print_purge(purged)
    print(
        "API workers mask the user within GAMEREC_EVENTS_POLL; the next user_logs materialization leaves them out; "
        "unserved model versions keep their history until GAMEREC_FORGET_RETENTION_DAYS passes "
        f"({Settings.from_env().forget.retention_days:g} days; README: Forgetting a player)",
        file=sys.stderr,
    )
    return 0


def _purge(forgotten: ForgottenUsers) -> PurgeReport:
    from gamerec_assets.recsys.feedback import now_us

    settings = Settings.from_env()
    store = backends.artifact_store(settings.storage)
    return purge(store, forgotten.since(0), settings.forget.retention_days, now_us())


def _print_purge(report: PurgeReport) -> None:
    for version in report.deleted:
        print(f"deleted model version {version}: it held a player forgotten past the retention")
    for run in report.deleted_runs:
        print(f"deleted {run}: the sharded batch run's histories held a player forgotten past the retention")
    for version in report.kept_served:
        print(f"kept model version {version}: served (the players are masked); the purge after the next promote "
              "deletes it")  # fmt: skip
    if report.next_due_us is not None:
        print(f"{report.pending} forgets within the retention; the next passes it at {_when(report.next_due_us)}")


def users_purge(args: argparse.Namespace) -> int:
    """The retention step alone (daily, from cron)."""
    report = _purge(ForgottenUsers(backends.table_store(Settings.from_env().storage)))
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
        return 0
    _print_purge(report)
    if not report.deleted and not report.kept_served and not report.deleted_runs:
        print(f"no model version holds a player forgotten past the retention ({report.due} forgets past it)")
    return 0


def _users_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="players: forget one (erase their events and rows); purge old versions")
    cmds = users.add_subparsers(dest="command", required=True)
    forget = cmds.add_parser("forget", help="erase player ID from every table and mask them in the served model")
    forget.add_argument("user_id", metavar="ID")
    forget.add_argument("--json", action="store_true")
    forget.set_defaults(func=users_forget)
    purge_ = cmds.add_parser(
        "purge", help="delete unserved model versions holding players forgotten past GAMEREC_FORGET_RETENTION_DAYS"
    )
    purge_.add_argument("--json", action="store_true")
    purge_.set_defaults(func=users_purge)


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
    ls = cmds.add_parser("list", help="versions, newest last; * marks production, c the challenger, ! a broken version")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=models_list)
    promote = cmds.add_parser("promote", help="point production at VERSION (validated in full first)")
    promote.add_argument("version")
    promote.set_defaults(func=models_promote)
    cmds.add_parser("rollback", help="point production back at the version it replaced").set_defaults(
        func=models_rollback
    )
    _keys_parser(sub)
    _experiments_parser(sub)
    _users_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (
        RegistryError,
        ArtifactStoreError,
        ArtifactError,
        OSError,
        TableStoreError,
        WriteKeyError,
        ExperimentError,
    ) as exc:
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
