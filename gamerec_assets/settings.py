"""Every environment variable the project reads, parsed in one place into frozen dataclasses.

`Settings.from_env()` reads `os.environ` once; each section's `from_env(env)` takes any mapping, so tests and callers
pass a dict instead of patching the process. A bad value fails here with a `ValueError` naming the variable, not
three modules later. Nothing else in `gamerec_assets/` or `gamerec_api/` reads (or writes) the environment:
`export_to_children` is the one way to hand a value to child processes (uvicorn workers).

Secrets are not kept: RAWG_API_KEY and WANDB_API_KEY only as "is it set" (the RAWG key reaches the live client
through `dg.EnvVar` at run time), and the passwords/tokens that must be kept are left out of `repr`.

Settings only describe: which backend runs and how it is built is decided in one place, `gamerec_assets.backends`.
This module imports nothing heavy, so `python -m gamerec_api` and the Dagster instance can parse settings without
loading polars, Dagster or numba.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = REPO_ROOT / ".gamerec"
RAWG_DEFAULT_BASE_URL = "https://api.rawg.io/api"
SCALE_EXECUTORS = ("multiprocess", "k8s", "celery", "celery_k8s", "dask")
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")

# Timeouts (seconds), each default written here only: a peer that hangs must fail a step, a reload or the CLI in
# bounded time, naming itself (botocore waits 60 s per try, PyMySQL forever). S3 objects are small enough for 30 s;
# database reads and writes get minutes because a bulk load is one long statement (a LOAD DATA of a large chunk,
# the swap's RENAME under load) and one send streams a chunk's CSV.
S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 30.0
DB_CONNECT_TIMEOUT_S = 10.0
DB_READ_TIMEOUT_S = 300.0
DB_WRITE_TIMEOUT_S = 300.0


# -- parsing helpers: every error names its variable -------------------------------------------------------------


def _text(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value, or None when unset or blank (a blank variable means "use the default")."""
    value = (env.get(name) or "").strip()
    return value or None


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also NaN
        raise ValueError(f"{name} must be a number >= {minimum}, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_text(env, name) or default).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _home(env: Mapping[str, str]) -> Path:
    """GAMEREC_HOME, default `.gamerec/` in the repo: shared by storage, tracking and the Dagster instance."""
    return Path(_text(env, "GAMEREC_HOME") or DEFAULT_HOME).resolve()


# -- sections ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageSettings:
    """Where tables (SQLite | MySQL) and artifacts (local folder | S3) live, and the network timeouts.

    A description only: `gamerec_assets.backends` chooses the backends from it and builds them.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_HOME",
        "GAMEREC_MYSQL_URL",
        "GAMEREC_S3_BUCKET",
        "GAMEREC_S3_PREFIX",
        "AWS_ENDPOINT_URL",
        "GAMEREC_S3_CONNECT_TIMEOUT",
        "GAMEREC_S3_READ_TIMEOUT",
        "GAMEREC_DB_CONNECT_TIMEOUT",
        "GAMEREC_DB_READ_TIMEOUT",
        "GAMEREC_DB_WRITE_TIMEOUT",
    )

    table_url: str
    artifact_root: Path
    home: Path
    s3_bucket: str | None = None
    s3_prefix: str = "gamerec"
    s3_endpoint_url: str | None = None
    s3_connect_timeout: float = S3_CONNECT_TIMEOUT_S
    s3_read_timeout: float = S3_READ_TIMEOUT_S
    db_connect_timeout: float = DB_CONNECT_TIMEOUT_S
    db_read_timeout: float = DB_READ_TIMEOUT_S
    db_write_timeout: float = DB_WRITE_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        home = _home(env)
        return cls(
            table_url=_text(env, "GAMEREC_MYSQL_URL") or f"sqlite:///{home / 'gamerec.db'}",
            artifact_root=home / "artifacts",
            home=home,
            s3_bucket=_text(env, "GAMEREC_S3_BUCKET"),
            s3_prefix=env.get("GAMEREC_S3_PREFIX", "gamerec"),  # set but empty: no prefix
            s3_endpoint_url=_text(env, "AWS_ENDPOINT_URL"),
            s3_connect_timeout=_float(env, "GAMEREC_S3_CONNECT_TIMEOUT", S3_CONNECT_TIMEOUT_S, 0.1),
            s3_read_timeout=_float(env, "GAMEREC_S3_READ_TIMEOUT", S3_READ_TIMEOUT_S, 0.1),
            db_connect_timeout=_float(env, "GAMEREC_DB_CONNECT_TIMEOUT", DB_CONNECT_TIMEOUT_S, 0.1),
            db_read_timeout=_float(env, "GAMEREC_DB_READ_TIMEOUT", DB_READ_TIMEOUT_S, 0.1),
            db_write_timeout=_float(env, "GAMEREC_DB_WRITE_TIMEOUT", DB_WRITE_TIMEOUT_S, 0.1),
        )


@dataclass(frozen=True)
class RawgSettings:
    """Live RAWG API when RAWG_API_KEY is set, the bundled (or GAMEREC_RAWG_SNAPSHOT) crawl otherwise.

    Only the key's presence is kept: the live client reads the key itself through `dg.EnvVar` at run time.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "RAWG_API_KEY",
        "RAWG_BASE_URL",
        "GAMEREC_RAWG_MAX_PAGES",
        "GAMEREC_RAWG_SNAPSHOT",
    )

    live: bool = False
    base_url: str = RAWG_DEFAULT_BASE_URL
    max_pages: int = 5  # 0: every page
    snapshot: Path | None = None  # None: the snapshot bundled with the package

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        snapshot = _text(env, "GAMEREC_RAWG_SNAPSHOT")
        return cls(
            live=bool(_text(env, "RAWG_API_KEY")),
            base_url=_text(env, "RAWG_BASE_URL") or RAWG_DEFAULT_BASE_URL,
            max_pages=_int(env, "GAMEREC_RAWG_MAX_PAGES", 5, minimum=0),
            snapshot=Path(snapshot) if snapshot else None,
        )


@dataclass(frozen=True)
class TrackingSettings:
    """Weights & Biases: WANDB_MODE if set, else online with WANDB_API_KEY, else offline runs under GAMEREC_HOME."""

    VARIABLES: ClassVar[tuple[str, ...]] = ("WANDB_MODE", "WANDB_API_KEY")

    mode: str = "offline"
    directory: Path = DEFAULT_HOME

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        default = "online" if _text(env, "WANDB_API_KEY") else "offline"
        return cls(mode=_choice(env, "WANDB_MODE", default, WANDB_MODES), directory=_home(env))


@dataclass(frozen=True)
class ThreadSettings:
    """Threads a large kernel call uses: GAMEREC_THREADS, default (or `all`/`auto`/`0`) every core."""

    VARIABLES: ClassVar[tuple[str, ...]] = ("GAMEREC_THREADS",)

    threads: int | None = None  # None: every core this process may run on

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        raw = (_text(env, "GAMEREC_THREADS") or "").lower()
        if raw in ("", "all", "auto", "0"):
            return cls(None)
        try:
            wanted = int(raw)
        except ValueError:
            raise ValueError(f"GAMEREC_THREADS must be an integer (or 'all'), got {raw!r}") from None
        return cls(max(1, wanted))  # values below 1 mean 1, as they always did

    def apply(self) -> None:
        """Tell the kernels (which never read the environment) how many threads to use."""
        from gamerec_assets.recsys import kernels

        kernels.set_threads(self.threads)


@dataclass(frozen=True)
class ScaleSettings:
    """The scale code location: how many item blocks a fit splits into, and the executor that runs its steps.

    GAMEREC_CELERY_BROKER (e.g. `pyamqp://guest:guest@127.0.0.1:5672//`) is kept only as "is it set", like the
    RAWG key: a broker URL may carry a password, so Dagster's config system resolves it (`{"env": ...}`) when a run
    or a worker starts, and never stores it in run config (`scale/executors.py`).
    """

    VARIABLES: ClassVar[tuple[str, ...]] = ("GAMEREC_SCALE_BLOCKS", "GAMEREC_SCALE_EXECUTOR", "GAMEREC_CELERY_BROKER")

    blocks: int = 8
    executor: str = "multiprocess"
    celery_broker_set: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            blocks=_int(env, "GAMEREC_SCALE_BLOCKS", 8, minimum=1),
            executor=_choice(env, "GAMEREC_SCALE_EXECUTOR", "multiprocess", SCALE_EXECUTORS),
            celery_broker_set=_text(env, "GAMEREC_CELERY_BROKER") is not None,
        )


CATALOG_KINDS = ("rawg", "file")
INTERACTION_KINDS = ("simulated", "steam", "file")


def parse_source(name: str, raw: str, kinds: tuple[str, ...]) -> str:
    """A data source spec, normalised: a bare kind (`rawg`, `simulated`) or `kind:<path>` with an absolute path.

    `name` is what the error names (a variable, or a run config field). Whether the file exists is the reading
    asset's concern: it fails naming the file, and a missing file never stops a code location from loading.
    """
    text = raw.strip()
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    bare = tuple(k for k in kinds if k in ("rawg", "simulated"))
    with_path = tuple(k for k in kinds if k not in bare)
    expected = " or ".join([*(repr(k) for k in bare), *(f"'{k}:<path>'" for k in with_path)])
    if kind in bare and not sep:
        return kind
    if kind in with_path and sep and path.strip():
        return f"{kind}:{Path(path.strip()).expanduser().resolve()}"
    if kind in with_path:
        example = f"'{kind}:data/{kind}.csv'"
        raise ValueError(f"{name} must be {expected}: {kind!r} needs a path (e.g. {example}), got {raw!r}")
    if _looks_like_path(text):  # the common slip: the path without its kind (`file:` first: the usual one)
        written = " or ".join(f"{name}={k}:{text}" for k in sorted(with_path, key=lambda k: k != "file"))
        raise ValueError(f"{name}={text}: a path needs its kind in front; write {written}")
    raise ValueError(f"{name} must be {expected}, got {raw!r}")


def _looks_like_path(text: str) -> bool:
    """`data/x.csv`, `/srv/games.parquet`, `~/x`, `games.csv`: a path, not a misspelt kind."""
    return any(mark in text for mark in ("/", "\\", ".")) or text.startswith("~")


def parse_catalog(raw: str, name: str = "GAMEREC_CATALOG") -> str:
    return parse_source(name, raw, CATALOG_KINDS)


def parse_interactions(raw: str, name: str = "GAMEREC_INTERACTIONS") -> str:
    return parse_source(name, raw, INTERACTION_KINDS)


def source_path(spec: str) -> str:
    """The path of a `kind:<path>` spec ('' for a bare kind)."""
    return spec.partition(":")[2]


@dataclass(frozen=True)
class SourceSettings:
    """Where the data comes from, for every run (a run's config may override it, visibly).

    GAMEREC_CATALOG: `rawg` (the bundled snapshot, or the live API with RAWG_API_KEY) or `file:<path>` (a catalogue
    file, CSV or Parquet). GAMEREC_INTERACTIONS: `simulated`, `steam:<path>` (the steam-200k log) or `file:<path>`
    (an interaction file). GAMEREC_STEAM_PATH is deprecated: it keeps its old meaning only (the log a run's
    `source: steam` reads when it names no path) and never selects the source.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = ("GAMEREC_CATALOG", "GAMEREC_INTERACTIONS", "GAMEREC_STEAM_PATH")

    catalog: str = "rawg"
    interactions: str = "simulated"
    steam_path: str = ""  # deprecated alias; empty: none configured

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        interactions = parse_interactions(_text(env, "GAMEREC_INTERACTIONS") or "simulated")
        steam_path = _text(env, "GAMEREC_STEAM_PATH") or ""
        if not steam_path and interactions.startswith("steam:"):
            steam_path = source_path(interactions)
        return cls(
            catalog=parse_catalog(_text(env, "GAMEREC_CATALOG") or "rawg"),
            interactions=interactions,
            steam_path=steam_path,
        )


@dataclass(frozen=True)
class InstanceSettings:
    """Dagster's own storage: MySQL when DAGSTER_MYSQL_HOST is set, SQLite under DAGSTER_HOME otherwise."""

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "DAGSTER_HOME",
        "DAGSTER_MYSQL_HOST",
        "DAGSTER_MYSQL_PORT",
        "DAGSTER_MYSQL_USER",
        "DAGSTER_MYSQL_PASSWORD",
        "DAGSTER_MYSQL_DB",
    )

    dagster_home: Path
    mysql_host: str | None = None
    mysql_port: int = 3306
    mysql_user: str = "root"
    mysql_password: str = field(default="", repr=False)
    mysql_db: str = "dagster"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            dagster_home=Path(_text(env, "DAGSTER_HOME") or _home(env) / "dagster_home"),
            mysql_host=_text(env, "DAGSTER_MYSQL_HOST"),
            mysql_port=_int(env, "DAGSTER_MYSQL_PORT", 3306, minimum=1, maximum=65535),
            mysql_user=env.get("DAGSTER_MYSQL_USER", "root"),
            mysql_password=env.get("DAGSTER_MYSQL_PASSWORD", ""),
            mysql_db=env.get("DAGSTER_MYSQL_DB", "dagster"),
        )

    def mysql_config(self) -> dict[str, Any] | None:
        """dagster-mysql's storage config, or None for SQLite."""
        if not self.mysql_host:
            return None
        return {
            "mysql_db": {
                "hostname": self.mysql_host,
                "port": self.mysql_port,
                "username": self.mysql_user,
                "password": self.mysql_password,
                "db_name": self.mysql_db,
            }
        }

    @property
    def sqlite_dir(self) -> Path:
        return self.dagster_home / "storage"


@dataclass(frozen=True)
class ApiSettings:
    """The Litestar service and `python -m gamerec_api`."""

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_API_HOST",
        "GAMEREC_API_PORT",
        "GAMEREC_RELOAD_INTERVAL",
        "GAMEREC_ADMIN_TOKEN",
        "GAMEREC_PREDICT_CACHE",
        "PROMETHEUS_MULTIPROC_DIR",
        "GAMEREC_EVENTS_POLL",
        "DAGSTER_PORT",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    reload_interval: float = 30.0  # seconds between polls of the production alias; 0: never
    admin_token: str | None = field(default=None, repr=False)  # None: POST /admin/reload is not registered
    predict_cache: int = 10_000  # /predict answers kept per model and worker; 0: off
    metrics_dir: str | None = None  # prometheus_client's multiprocess directory (several workers)
    events_poll: float = 0.5  # seconds between reads of interaction_events by each worker's realtime overlay; 0: off
    dagster_port: int = 3000  # the Dagster UI beside the API under `make run` (scripts/serve.sh reads the same)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            host=_text(env, "GAMEREC_API_HOST") or "127.0.0.1",
            port=_int(env, "GAMEREC_API_PORT", 8000, minimum=0, maximum=65535),
            reload_interval=_float(env, "GAMEREC_RELOAD_INTERVAL", 30.0, minimum=0.0),
            admin_token=_text(env, "GAMEREC_ADMIN_TOKEN"),
            predict_cache=_int(env, "GAMEREC_PREDICT_CACHE", 10_000, minimum=0),
            metrics_dir=_text(env, "PROMETHEUS_MULTIPROC_DIR"),
            events_poll=_float(env, "GAMEREC_EVENTS_POLL", 0.5, minimum=0.0),
            dagster_port=_int(env, "DAGSTER_PORT", 3000, minimum=1, maximum=65535),
        )


@dataclass(frozen=True)
class RetrainSettings:
    """Retraining on players' events: the sensor `retrain_on_new_events` requests a refresh when at least
    GAMEREC_RETRAIN_EVENTS events arrived since the production model's data (besides the daily schedule), counting
    at most GAMEREC_RETRAIN_MIN_SOURCES-th of them per source; and how far training trusts events (bursts, new
    users, the per-game cap: `recsys.event_trust`)."""

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_RETRAIN_EVENTS",
        # -- poisoning guards (issue #22 item 2; `recsys.event_trust`) --
        "GAMEREC_RETRAIN_MIN_SOURCES",
        "GAMEREC_EVENTS_BURST_WINDOW",
        "GAMEREC_EVENTS_BURST_USERS",
        "GAMEREC_TRUST_MIN_EVENTS",
        "GAMEREC_TRUST_GAME_GROWTH",
        "GAMEREC_TRUST_GAME_FLOOR",
    )

    min_events: int = 1_000
    # -- poisoning guards (issue #22 item 2; the rules are documented in `recsys.event_trust`) --------------------
    min_sources: int = 5  # the sensor counts at most min_events / min_sources events from one source
    burst_window_s: float = 60.0  # arrival window (s): a burst's unit, and the sensor's source until write keys
    burst_new_users: int = 50  # users first seen in one window that make it a burst (held back from training)
    trust_min_events: int = 5  # events a user outside the base source needs before training counts them
    trust_game_growth: float = 1.0  # per game, such users count for at most this × its trusted audience ...
    trust_game_floor: int = 10  # ... and at least this many

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            min_events=_int(env, "GAMEREC_RETRAIN_EVENTS", 1_000, minimum=1),
            # -- poisoning guards (issue #22 item 2) --
            min_sources=_int(env, "GAMEREC_RETRAIN_MIN_SOURCES", 5, minimum=1),
            burst_window_s=_float(env, "GAMEREC_EVENTS_BURST_WINDOW", 60.0, minimum=0.001),
            burst_new_users=_int(env, "GAMEREC_EVENTS_BURST_USERS", 50, minimum=2),
            trust_min_events=_int(env, "GAMEREC_TRUST_MIN_EVENTS", 5, minimum=1),
            trust_game_growth=_float(env, "GAMEREC_TRUST_GAME_GROWTH", 1.0, minimum=0.0),
            trust_game_floor=_int(env, "GAMEREC_TRUST_GAME_FLOOR", 10, minimum=0),
        )


# -- POST /events: who may post, how fast (issue 22) --------------------------------------------------------------


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (_text(env, name) or "false").lower()
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class IngestSettings:
    """Authenticated ingestion (`gamerec_api/event_auth.py`): write keys are kept hashed in the `write_keys` table
    (`gamerec keys create NAME`), answer tokens are signed with GAMEREC_EVENT_SECRET (unset: a random secret kept in
    GAMEREC_HOME/event_secret, shared by every worker of the host), and token buckets bound each key's and each
    user's events. GAMEREC_EVENTS_OPEN=true lets requests without a credential post (a local demo only)."""

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_EVENTS_OPEN",
        "GAMEREC_EVENT_SECRET",
        "GAMEREC_EVENT_TOKEN_TTL",
        "GAMEREC_WRITE_KEYS_TTL",
        "GAMEREC_EVENTS_KEY_RATE",
        "GAMEREC_EVENTS_KEY_BURST",
        "GAMEREC_EVENTS_USER_RATE",
        "GAMEREC_EVENTS_USER_BURST",
        "GAMEREC_IDEMPOTENCY_TTL",
    )

    open: bool = False  # True: POST /events without a credential is accepted (key "open" in the metrics)
    event_secret: str | None = field(default=None, repr=False)  # None: GAMEREC_HOME/event_secret
    token_ttl: float = 86_400.0  # seconds an answer's event_token stays valid
    keys_ttl: float = 5.0  # seconds a worker trusts its cached write keys: a revoked key stops within this
    key_rate: float = 50_000.0  # events/s per write key (token bucket refill)
    key_burst: int = 100_000  # the bucket's size (>= 1,000: a full request always fits an idle key)
    user_rate: float = 20.0  # events/s per user id
    user_burst: int = 1_000  # a full request for one user fits an idle user
    idempotency_ttl: float = 86_400.0  # seconds an Idempotency-Key's outcome is kept (then purged)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            open=_flag(env, "GAMEREC_EVENTS_OPEN"),
            event_secret=_text(env, "GAMEREC_EVENT_SECRET"),
            token_ttl=_float(env, "GAMEREC_EVENT_TOKEN_TTL", 86_400.0, 1.0),
            keys_ttl=_float(env, "GAMEREC_WRITE_KEYS_TTL", 5.0, 0.0),
            key_rate=_float(env, "GAMEREC_EVENTS_KEY_RATE", 50_000.0, 0.001),
            key_burst=_int(env, "GAMEREC_EVENTS_KEY_BURST", 100_000, minimum=1000),
            user_rate=_float(env, "GAMEREC_EVENTS_USER_RATE", 20.0, 0.001),
            user_burst=_int(env, "GAMEREC_EVENTS_USER_BURST", 1_000, minimum=1),
            idempotency_ttl=_float(env, "GAMEREC_IDEMPOTENCY_TTL", 86_400.0, 60.0),
        )


# -- HTTP guards (issue 22 item 7): forwarded headers and request header bounds -----------------------------------


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma- or space-separated list of IP addresses / CIDR networks, each checked (kept as normalised text so
    the section stays hashable and importing it stays cheap)."""
    import ipaddress

    out = []
    for part in (_text(env, name) or "").replace(",", " ").split():
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{name} must list IP addresses or CIDR networks (10.0.0.0/8), got {part!r}") from None
    return tuple(out)


@dataclass(frozen=True)
class GuardSettings:
    """Who may name the client (`X-Forwarded-For`) and how big a request's header section may be.

    GAMEREC_TRUSTED_PROXIES: the proxies whose `X-Forwarded-For` is believed (IPs or CIDRs; empty, the default: the
    TCP peer is the client, whatever a header claims). GAMEREC_MAX_HEADER_BYTES bounds the request line plus every
    header (names and values), GAMEREC_MAX_HEADERS their number: past either the server answers 431 and closes.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_TRUSTED_PROXIES",
        "GAMEREC_MAX_HEADER_BYTES",
        "GAMEREC_MAX_HEADERS",
    )

    trusted_proxies: tuple[str, ...] = ()
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(
            trusted_proxies=_networks(env, "GAMEREC_TRUSTED_PROXIES"),
            max_header_bytes=_int(env, "GAMEREC_MAX_HEADER_BYTES", 16 * 1024, minimum=1024, maximum=1 << 20),
            max_headers=_int(env, "GAMEREC_MAX_HEADERS", 100, minimum=10, maximum=10_000),
        )


# -- online evaluation of experiments (issue 23 part 2) --------------------------------------------------------------


@dataclass(frozen=True)
class OnlineSettings:
    """The `online_evaluation` asset and the online promotion rule (`recsys.online_evaluation`).

    GAMEREC_ONLINE_GATE=true: while an experiment runs, `production_model` promotes only when the offline gate passes
    and the online result is not significantly worse (off by default: a site without traffic has no online result).
    GAMEREC_ONLINE_ALPHA: the level of the sequential test behind both. GAMEREC_ONLINE_RETENTION_DAYS: how long the
    served answers (`experiment_answers`) are kept; older ones are pruned when the asset runs.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = (
        "GAMEREC_ONLINE_GATE",
        "GAMEREC_ONLINE_ALPHA",
        "GAMEREC_ONLINE_RETENTION_DAYS",
    )

    gate: bool = False
    alpha: float = 0.05
    retention_days: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        alpha = _float(env, "GAMEREC_ONLINE_ALPHA", 0.05, minimum=1e-6)
        if not alpha < 0.5:
            raw = _text(env, "GAMEREC_ONLINE_ALPHA")
            raise ValueError(f"GAMEREC_ONLINE_ALPHA must be a number in [1e-06, 0.5), got {raw!r}")
        return cls(
            gate=_flag(env, "GAMEREC_ONLINE_GATE"),
            alpha=alpha,
            retention_days=_float(env, "GAMEREC_ONLINE_RETENTION_DAYS", 30.0, minimum=1.0),
        )


@dataclass(frozen=True)
class ForgetSettings:
    """Forgetting a player (`gamerec users forget ID`, README "Forgetting a player").

    GAMEREC_FORGET_RETENTION_DAYS: how long model versions that are not served keep a forgotten player's history
    in their serving data; past it `gamerec users forget` / `gamerec users purge` deletes them.
    """

    VARIABLES: ClassVar[tuple[str, ...]] = ("GAMEREC_FORGET_RETENTION_DAYS",)

    retention_days: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(retention_days=_float(env, "GAMEREC_FORGET_RETENTION_DAYS", 30.0, minimum=0.0))


SECTIONS = (
    StorageSettings,
    RawgSettings,
    TrackingSettings,
    ThreadSettings,
    ScaleSettings,
    SourceSettings,
    InstanceSettings,
    ApiSettings,
    RetrainSettings,
    IngestSettings,
    GuardSettings,
    OnlineSettings,
    ForgetSettings,
)
# Every variable this module reads, in section order (the README's Configuration table lists the same set).
VARIABLES: tuple[str, ...] = tuple(dict.fromkeys(name for section in SECTIONS for name in section.VARIABLES))


@dataclass(frozen=True)
class Settings:
    """The whole configuration: one section per concern."""

    storage: StorageSettings
    rawg: RawgSettings
    tracking: TrackingSettings
    threads: ThreadSettings
    scale: ScaleSettings
    sources: SourceSettings
    instance: InstanceSettings
    api: ApiSettings
    retrain: RetrainSettings = RetrainSettings()
    ingest: IngestSettings = IngestSettings()
    guards: GuardSettings = GuardSettings()
    online: OnlineSettings = OnlineSettings()
    forget: ForgetSettings = ForgetSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse `env` (None: this process's environment)."""
        env = dict(os.environ if env is None else env)
        return cls(
            storage=StorageSettings.from_env(env),
            rawg=RawgSettings.from_env(env),
            tracking=TrackingSettings.from_env(env),
            threads=ThreadSettings.from_env(env),
            scale=ScaleSettings.from_env(env),
            sources=SourceSettings.from_env(env),
            instance=InstanceSettings.from_env(env),
            api=ApiSettings.from_env(env),
            retrain=RetrainSettings.from_env(env),
            ingest=IngestSettings.from_env(env),
            guards=GuardSettings.from_env(env),
            online=OnlineSettings.from_env(env),
            forget=ForgetSettings.from_env(env),
        )


def export_to_children(values: Mapping[str, str]) -> None:
    """Put settings into this process's environment so that child processes (uvicorn workers) parse the same.

    Only names this module reads are accepted, so a typo cannot export a variable nobody reads.
    """
    unknown = sorted(set(values) - set(VARIABLES))
    if unknown:
        raise ValueError(f"not settings variables: {unknown}")
    os.environ.update(values)


# -- checks when a command starts (issue #26 §3) ------------------------------------------------------------------
#
# `Settings.from_env` never looks at the disk (a missing file must not stop a code location from loading); the
# commands a person types (`make run`, `make materialize`, `make serve`) call `check` first, so a wrong setting is
# one line naming the variable, the value and the fix, before anything starts, not a traceback 19 s into a run.

# The formats `recsys.catalogue_file.read_table` reads (catalogue and interaction files alike).
DATA_FILE_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv", ".parquet", ".pq")
_SOURCE_FIXES = {
    ("GAMEREC_CATALOG", "file"): "file:<path of a CSV or Parquet catalogue>",
    ("GAMEREC_INTERACTIONS", "file"): "file:<path of a CSV or Parquet interaction file>",
    ("GAMEREC_INTERACTIONS", "steam"): "steam:<path of the steam-200k CSV>",
}
# SQLAlchemy's MySQL drivers -> the module each imports (a bare `mysql://` means mysqlclient)
_MYSQL_DRIVERS = {"pymysql": "pymysql", "mysqldb": "MySQLdb", "mysqlconnector": "mysql.connector"}
MYSQL_EXTRA_FIX = (
    "install the MySQL extra: .venv/bin/pip install -e '.[mysql]' (make install adds it when GAMEREC_MYSQL_URL is set)"
)


def _file_problem(raw_path: str, suffixes: tuple[str, ...] = ()) -> str | None:
    """Why `raw_path` cannot be read as a data file, or None; relative paths say where they were resolved from."""
    path = Path(raw_path).expanduser()
    cwd = Path.cwd()
    resolved = "" if path.is_absolute() else f" (relative paths are resolved from {cwd})"
    full = path if path.is_absolute() else cwd / path
    if not full.exists():
        return f"no such file{resolved}"
    if full.is_dir():
        return f"is a directory, not a file{resolved}"
    if not os.access(full, os.R_OK):
        return "cannot be read (permissions)"
    if suffixes and not full.name.lower().endswith(suffixes):
        return f"unknown format (expected {', '.join(suffixes)})"
    return None


def _dir_problem(raw_path: str) -> str | None:
    """Why `raw_path` cannot be (or become) a writable directory, or None."""
    path = Path(raw_path).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            return "is a file, not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "cannot be written (permissions)"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created ({parent} is not a writable directory)"
    return None


def _masked_url(url: str) -> str:
    """The URL without its password (an error line must not print a secret)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def mysql_driver_problem(url: str) -> str | None:
    """None when `url` is not MySQL or its driver imports; else why not (the `[mysql]` extra is missing)."""
    import importlib.util

    scheme = url.partition("://")[0].lower()
    dialect, _, driver = scheme.partition("+")
    if dialect not in ("mysql", "mariadb"):
        return None
    module = _MYSQL_DRIVERS.get(driver or "mysqldb", driver)
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted module whose parent is missing
        found = False
    return None if found else f"its driver {module} is not installed"


def check(env: Mapping[str, str]) -> list[str]:
    """Every setting a command cannot start with, one line each: `VAR=value: problem; fix`. Empty when all is well."""
    lines: list[str] = []
    try:
        Settings.from_env(env)
    except ValueError as exc:
        lines.append(str(exc))  # the parsers' messages name the variable, the value and what it must be
    for name in ("GAMEREC_CATALOG", "GAMEREC_INTERACTIONS"):
        raw = _text(env, name)
        kind, sep, path = (raw or "").partition(":")
        fix = _SOURCE_FIXES.get((name, kind.strip().lower()))
        if raw is None or not sep or fix is None or not path.strip() or any(name in line for line in lines):
            continue
        suffixes = DATA_FILE_SUFFIXES if kind.strip().lower() == "file" else ()
        problem = _file_problem(path.strip(), suffixes)
        if problem:
            lines.append(f"{name}={raw}: {problem}; set it to {fix}")
    for name, fix in (
        ("GAMEREC_STEAM_PATH", "set it to the path of the steam-200k CSV, or unset it (deprecated)"),
        ("GAMEREC_RAWG_SNAPSHOT", "set it to the path of a RAWG snapshot, or unset it for the bundled one"),
    ):
        raw = _text(env, name)
        problem = _file_problem(raw) if raw else None
        if problem:
            lines.append(f"{name}={raw}: {problem}; {fix}")
    for name, fix in (
        ("GAMEREC_HOME", "set it to a writable directory (default: .gamerec in the checkout)"),
        ("DAGSTER_HOME", "set it to a writable directory (default: $GAMEREC_HOME/dagster_home)"),
    ):
        raw = _text(env, name)
        problem = _dir_problem(raw) if raw else None
        if problem:
            lines.append(f"{name}={raw}: {problem}; {fix}")
    metrics = _text(env, "PROMETHEUS_MULTIPROC_DIR")
    if metrics and not Path(metrics).expanduser().is_dir():
        lines.append(f"PROMETHEUS_MULTIPROC_DIR={metrics}: no such directory; create it (mkdir -p) or unset it")
    url = _text(env, "GAMEREC_MYSQL_URL")
    problem = mysql_driver_problem(url) if url else None
    if problem and url:
        lines.append(f"GAMEREC_MYSQL_URL={_masked_url(url)}: {problem}; {MYSQL_EXTRA_FIX}")
    return lines


def port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port (bound the way uvicorn binds: SO_REUSEADDR), or None."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use by another program"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "not an address of this machine"
            if exc.errno == errno.EACCES:
                return "needs privileges (ports below 1024)"
            return exc.strerror or str(exc)
    return None


def _free_port(host: str, start: int, avoid: set[int]) -> int | None:
    """The first port after `start` a server could listen on (a suggestion, not a reservation)."""
    return next(
        (p for p in range(start + 1, min(start + 50, 65535)) if p not in avoid and port_problem(host, p) is None),
        None,
    )


def check_ports(env: Mapping[str, str], command: str = "make serve") -> list[str]:
    """The API's and the Dagster UI's ports (scripts/serve.sh starts both): busy ones, one line each."""
    try:
        api = ApiSettings.from_env(env)
    except ValueError:
        return []  # `check` reports it
    wanted = [("GAMEREC_API_PORT", api.host, api.port), ("DAGSTER_PORT", "127.0.0.1", api.dagster_port)]
    lines: list[str] = []
    if api.port == api.dagster_port:
        return [f"GAMEREC_API_PORT={api.port}: DAGSTER_PORT is the same port; set one of them to another port"]
    for name, host, port in wanted:
        if port == 0:
            continue  # any free port
        problem = port_problem(host, port)
        if problem == "not an address of this machine":
            lines.append(f"GAMEREC_API_HOST={host}: {problem}; set it to 127.0.0.1, 0.0.0.0 or one of its addresses")
        elif problem:
            free = _free_port(host, port, {api.port, api.dagster_port})
            example = f"{name}={free} {command}" if free else f"{name}=<another port> {command}"
            lines.append(f"{name}={port}: {host}:{port} is {problem}; stop that program or pick another: {example}")
    return lines


def source_exports(env: Mapping[str, str]) -> dict[str, str]:
    """The path settings made absolute, for a child started in another directory (`dagster dev` in DAGSTER_HOME)."""
    sources = SourceSettings.from_env(env)
    out = {"GAMEREC_CATALOG": sources.catalog, "GAMEREC_INTERACTIONS": sources.interactions}
    if _text(env, "GAMEREC_STEAM_PATH"):
        out["GAMEREC_STEAM_PATH"] = str(Path(sources.steam_path).expanduser().resolve())
    snapshot = RawgSettings.from_env(env).snapshot
    if snapshot is not None:
        out["GAMEREC_RAWG_SNAPSHOT"] = str(snapshot.expanduser().resolve())
    if _text(env, "GAMEREC_HOME"):
        out["GAMEREC_HOME"] = str(_home(env))
    dagster_home = _text(env, "DAGSTER_HOME")
    if dagster_home:
        out["DAGSTER_HOME"] = str(Path(dagster_home).expanduser().resolve())
    return out


def log_dir(env: Mapping[str, str] | None = None) -> Path:
    """GAMEREC_HOME/logs: the debug logs (tracebacks, Dagster's events, the Dagster UI's output), off the screen."""
    env = os.environ if env is None else env
    return _home(env) / "logs"


def write_debug_log(name: str, text: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append `text` (a traceback, a failed check) to GAMEREC_HOME/logs/<name>; None when it cannot be written."""
    import time

    path = log_dir(env) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n{text.rstrip()}\n")
    except OSError:
        return None
    return path


def check_or_exit(command: str, ports: bool = False, env: Mapping[str, str] | None = None) -> None:
    """`check` (and `check_ports`) for a command's start: on a problem, one line each on stderr and exit code 2."""
    import sys
    import traceback

    env = dict(os.environ if env is None else env)
    try:
        lines = check(env) + (check_ports(env, command) if ports else [])
    except Exception:  # a check that breaks must not hide the command's own error
        write_debug_log("gamerec.log", f"{command}: settings check failed\n{traceback.format_exc()}", env)
        return
    if not lines:
        return
    write_debug_log("gamerec.log", f"{command}: not started\n" + "\n".join(lines), env)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """`python -m gamerec_assets.settings --check [--ports] [--export] [--command NAME]`: make targets' first step."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python -m gamerec_assets.settings", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="check the settings that name files, drivers, homes")
    parser.add_argument("--ports", action="store_true", help="also check the API's and the Dagster UI's ports")
    parser.add_argument("--export", action="store_true", help="print `export VAR=...` lines with absolute paths")
    parser.add_argument("--command", default="make run", help="the command named in a suggested fix")
    args = parser.parse_args(argv)
    if args.check or args.ports:
        check_or_exit(args.command, ports=args.ports)
    if args.export:
        for name, value in source_exports(os.environ).items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
