"""Everything a request needs, loaded once from one model version: the model, its cards, its histories, JSON.

A version carries its own catalogue cards and the histories it was trained on (`ModelArtifact.serving`), so a
state is built from the registry alone: no table is read, and after a promote or a rollback every endpoint answers
from that one version (`model_version` in the answers, and in /readyz). A reload builds a whole new `ServingState`
off the event loop and the holder swaps one reference, so a request that read `holder.state` keeps a consistent
model / cards / histories set for its whole life. The only thing that changes inside a state is its bounded cache
of finished /predict answers, which belong to that state.

Users are keyed by the string form of their id (an integer id is its decimal string). The lookup is a hash
index: 256 dicts from the UTF-8 id to its history row, the shard picked by the id's own (cached) hash. One dict of
1,000,000 entries would be faster to fill, but each of its resizes is one C call that rehashes every entry with
the GIL held (tens of ms against the event loop); shards of ~4,000 resize in microseconds. A request pays one
`hash() & 255` and one probe (~0.1 µs; a binary search of a sorted fixed-width id array measured 2.5 µs).
Listing by prefix binary-searches the version's sorted id blob. The request path never touches polars,
pandas or the database: a user's history is a slice of an in-memory CSR and scoring is one compiled kernel call.
"""

from __future__ import annotations

import bisect
import gc
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from gamerec_api.schemas import GameCard, cards_of
from gamerec_assets.recsys.item_filter import CatalogueMasks, build_masks
from gamerec_assets.recsys.model_artifact import ServingData
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.store.registry import InvalidVersion, ModelRegistry

log = logging.getLogger("gamerec_api")
CHUNK = 20_000  # users per step of a load loop: no single call holds the GIL for more than a few ms
SHARDS = 256  # dicts of the user index (a power of two: the shard is hash(key) & (SHARDS - 1))


class NotReady(RuntimeError):
    """There is nothing to serve yet (no production model)."""


class NoServingData(InvalidVersion):
    """The version predates cards.jsonl / serving.npz: it cannot be served without mixing in the current tables."""


@dataclass(frozen=True)
class Fragments:
    """Per model item: the constant part of an item object, the whole object as popularity fill, its id as JSON
    and its {game_id, name} reference."""

    item_head: tuple[bytes, ...]  # b'{"game_id":..,"name":..,"genres":..,"rating":..,"background_image":..,"score":'
    popular_item: tuple[bytes, ...]  # item_head + b'<fill score>,"source":"popular","because":[]},' (score: per item)
    id_json: tuple[bytes, ...]  # the game id as JSON
    ref: tuple[bytes, ...]  # b'{"game_id":..,"name":..}'
    version: bytes  # the model version as a JSON string


POPULAR_TAIL = b',"source":"popular","because":[]},'


def build_fragments(cards: tuple[GameCard, ...], version: str, fill_scores: np.ndarray) -> Fragments:
    """`fill_scores`: per item, its score as popularity fill (`ServingModel.popular_score`), rounded to 6 places
    like every score; a fill item is then one precomputed fragment on the request path."""
    encode = msgspec.json.encode
    heads, refs = [], []
    for c in cards:
        obj = encode(
            {
                "game_id": c.game_id,
                "name": c.name,
                "genres": c.genres,
                "rating": c.rating,
                "background_image": c.background_image,
            }
        )
        heads.append(obj[:-1] + b',"score":')
        refs.append(encode({"game_id": c.game_id, "name": c.name}))
    fill = [encode(round(x, 6)) for x in np.asarray(fill_scores, np.float64).tolist()]
    popular = tuple(h + f + POPULAR_TAIL for h, f in zip(heads, fill, strict=True))
    return Fragments(tuple(heads), popular, tuple(encode(c.game_id) for c in cards), tuple(refs), encode(version))


def public_source(spec: object) -> str | None:
    """A source as the API shows it: `simulated`, `rawg`, or `<kind>:<file name>` (`file:interactions.csv`,
    `steam:steam-200k.csv.gz`); None for a missing or `unknown` one. The directories are left out: the page is
    public, the server's file layout is not its business."""
    if not isinstance(spec, str) or not spec or spec == "unknown":
        return None
    kind, sep, path = spec.partition(":")
    if not sep:
        return spec[:100]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{kind}:{name}"[:100] if name else kind[:100]


def data_sources(manifest: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(interactions, catalogue) the version was trained on, from its manifest's `data` block (what
    `recsys.provenance.provenance` records: `interactions` = the `user_logs` source spec, `catalog` = `rawg` or
    `file:<path>`), as `public_source` shows them; None where the version does not record it (older versions)."""
    data = manifest.get("data")
    if not isinstance(data, Mapping):
        return None, None
    return public_source(data.get("interactions")), public_source(data.get("catalog"))


@dataclass(frozen=True, eq=False)
class ServingState:
    version: str
    model: ServingModel  # scoring, neighbours and game id -> item index
    cards: tuple[GameCard, ...]  # per model item index, the version's own catalogue (the API's cards)
    users: ServingData  # the version's user ids (sorted UTF-8 blob + offsets) and histories
    user_index: tuple[dict[bytes, int], ...]  # SHARDS dicts: UTF-8 user id -> history row
    hist_indptr: np.ndarray  # int64
    hist_indices: np.ndarray  # int64 model item indices, sorted within each user (the kernel's input type)
    search_index: tuple[tuple[str, int], ...]  # (lower-case name, item index), most popular first
    fragments: Fragments  # pre-encoded JSON per item for /predict
    source: str | None = None  # where the version's play logs came from (`data_sources`), None: not recorded
    catalog_source: str | None = None  # where its catalogue came from (`rawg`, `file:<name>`), None: not recorded
    cache_size: int = 0  # /predict answers kept per state (0: off); a swap starts an empty cache
    # the request-time filters' precomputed masks over this version's items (`item_filter`); None: not built
    filter_masks: CatalogueMasks | None = field(default=None, repr=False)
    # a request filter's JSON -> its allowed mask, b"boost" + boosts' JSON -> their weights (never written),
    # bounded like `answers`: a site sends few filter shapes, and a repeated one then costs a dict probe instead of
    # a pass over the catalogue
    allowed_masks: dict[bytes, np.ndarray] = field(default_factory=dict, repr=False)
    loaded_at: float = field(default_factory=time.time)
    # (user row or -1 for "no history", k) -> (JSON after the user id, source, the answer's game ids for its event
    # token); bounded, first in first out. A user with realtime events is keyed (row, k, gen of the user's overlay
    # value): see answers.pipeline
    answers: dict[tuple[int, ...], tuple[bytes, str, bytes]] = field(default_factory=dict, repr=False)
    # forgotten users hidden in this version (`forgotten_mask`): UTF-8 id -> their history row, out of `user_index`
    masked: dict[bytes, int] = field(default_factory=dict, repr=False)

    def remember(self, key: tuple[int, ...], value: tuple[bytes, str, bytes]) -> None:
        """Keep an answer; the oldest goes when full (the event loop is the only writer)."""
        if self.cache_size <= 0:
            return
        answers = self.answers
        if len(answers) >= self.cache_size:
            answers.pop(next(iter(answers)), None)
        answers[key] = value

    # -- users ---------------------------------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return self.users.n_users

    def user_row(self, key: bytes) -> int:
        """Row of the user (UTF-8 id) in the history CSR, -1 for users without history: one dict probe."""
        return self.user_index[hash(key) & (SHARDS - 1)].get(key, -1)

    def mask(self, key: bytes) -> bool:
        """Hide a forgotten user in this version: out of the index (every answer then treats them as unknown) and
        of the listing, their cached answers dropped. Runs beside requests: each step is one atomic dict operation.
        True when the version knew the user."""
        row = self.user_index[hash(key) & (SHARDS - 1)].pop(key, -1)
        if row < 0:
            return False
        self.masked[key] = row
        for cached in [k for k in list(self.answers) if k[0] == row]:
            self.answers.pop(cached, None)
        return True

    def listed_rows(self, rows: range, offset: int, limit: int) -> tuple[int, list[int]]:
        """(users in `rows` not masked, the rows of the page [offset, offset + limit) of them): `rows` sliced
        as it is when nobody is masked; otherwise the masked rows (few) are skipped."""
        hidden = sorted(r for r in self.masked.values() if r in rows)
        if not hidden:
            return len(rows), list(rows[offset : offset + limit])
        skip = set(hidden)
        # the first row of the page: offset visible rows precede it
        start = rows.start + offset
        while True:
            before = bisect.bisect_right(hidden, start)
            at = rows.start + offset + before
            if at == start:
                break
            start = at
        page: list[int] = []
        row = start
        while row < rows.stop and len(page) < limit:
            if row not in skip:
                page.append(row)
            row += 1
        return len(rows) - len(hidden), page

    def listed(self, rows: list[int]) -> list[tuple[str, int]]:
        """(user id, games played) of history rows."""
        indptr = self.hist_indptr
        return [(self._key_at(r).decode(), int(indptr[r + 1] - indptr[r])) for r in rows]

    def history(self, key: bytes) -> list[int]:
        """Sorted model item indices the user played (empty for unknown users)."""
        return self.history_items(self.user_row(key)).tolist()  # type: ignore[no-any-return]

    def history_items(self, row: int) -> np.ndarray:
        """The user's sorted model item indices as an int64 view of the CSR (empty for row -1): no copy."""
        if row < 0:
            return self.hist_indices[:0]
        lo, hi = self.hist_indptr[row : row + 2].tolist()
        return self.hist_indices[lo:hi]

    def games_played(self, lo: int, hi: int) -> list[int]:
        return (self.hist_indptr[lo + 1 : hi + 1] - self.hist_indptr[lo:hi]).tolist()  # type: ignore[no-any-return]

    def user_rows_with_prefix(self, prefix: str) -> range:
        """Rows of the users whose id starts with `prefix`, in id order: two binary searches over the sorted blob
        (UTF-8 byte order is code point order, and no UTF-8 byte is 0xff, so prefix + 0xff bounds the range)."""
        n = self.n_users
        if not prefix:
            return range(n)
        p = prefix.encode()
        key = self._key_at
        lo = bisect.bisect_left(range(n), p, key=key)
        hi = bisect.bisect_left(range(n), p + b"\xff", lo=lo, key=key)
        return range(lo, hi)

    def _key_at(self, row: int) -> bytes:
        offsets = self.users.user_offsets
        return self.users.user_blob[int(offsets[row]) : int(offsets[row + 1])].tobytes()  # type: ignore[no-any-return]

    def user_ids(self, rows: range) -> list[str]:
        if not len(rows):
            return []
        return [k.decode() for k in self.users.user_keys(rows.start, rows.stop)]

    # -- search --------------------------------------------------------------------------------------------------

    def search(self, text: str, limit: int) -> list[GameCard]:
        """Case-insensitive substring match on names; names that start with the text first, then by popularity."""
        needle = text.strip().lower()
        if not needle:
            return [self.cards[i] for _, i in self.search_index[:limit]]
        hits = [(not name.startswith(needle), n, i) for n, (name, i) in enumerate(self.search_index) if needle in name]
        hits.sort()
        return [self.cards[i] for _, _, i in hits[:limit]]


def _user_index(users: ServingData) -> tuple[dict[bytes, int], ...]:
    """UTF-8 id -> row in SHARDS dicts, filled by a plain loop (bytecode: the interpreter hands the GIL to the event
    loop every switch interval), with ids sliced from the blob CHUNK at a time."""
    shards: tuple[dict[bytes, int], ...] = tuple({} for _ in range(SHARDS))
    mask = SHARDS - 1
    n = users.n_users
    for lo in range(0, n, CHUNK):
        row = lo
        for key in users.user_keys(lo, min(lo + CHUNK, n)):
            shards[hash(key) & mask][key] = row
            row += 1
    return shards


def _widen(a: np.ndarray) -> np.ndarray:
    """int64 copy in chunks (the kernel takes int64 histories; one 10 M-element cast is a long single call)."""
    out = np.empty(len(a), np.int64)
    step = 1 << 20
    for lo in range(0, len(a), step):
        out[lo : lo + step] = a[lo : lo + step]
    return out


def build_state(model: ServingModel, cache_size: int = 0) -> ServingState:
    """The serving state of one version, from its own cards and histories (NoServingData when it has none)."""
    users = model.artifact.serving
    if users is None:
        raise NoServingData(
            f"model version {model.version} predates per-version serving data (cards.jsonl, serving.npz): serving it "
            "would mix its similarity with the current tables' catalogue and histories; re-run the pipeline, or "
            "promote a newer version"
        )
    cards = cards_of(users.cards)  # the API's own type, converted once per version
    search_index = tuple((cards[i].name.lower(), i) for i in users.search_order.tolist())
    source, catalog_source = data_sources(model.artifact.manifest)
    return ServingState(
        version=model.version,
        model=model,
        cards=cards,
        users=users,
        user_index=_user_index(users),
        hist_indptr=np.asarray(users.hist_indptr, np.int64),
        hist_indices=_widen(users.hist_indices),
        search_index=search_index,
        fragments=build_fragments(cards, model.version, model.popular_score),
        source=source,
        catalog_source=catalog_source,
        cache_size=cache_size,
        filter_masks=_filter_masks(users, model),
    )


def _filter_masks(users: ServingData, model: ServingModel) -> CatalogueMasks:
    """Per genre, tag and platform the items carrying it, and the release days, from the version's stored cards."""
    stored = users.cards
    return build_masks(
        {
            "genres": [c.genres for c in stored],
            "tags": [c.tags for c in stored],
            "platforms": [c.platforms for c in stored],
        },
        [c.released for c in stored],
        model.popularity,
    )


def load_state(
    registry: ModelRegistry, version: str | None = None, cache_size: int = 0, fallback: bool = False
) -> ServingState:
    """Load the production (or the given) model version, with its cards and histories, then warm up.

    Reads the registry only (never a table). Every array is validated by the registry before a kernel sees it.
    With `fallback` (a server that has nothing to serve yet) an unservable production version (also one without
    serving data) is skipped for the newest servable one of the alias's history, so a bad promote leaves a fresh
    server on the previous model instead of 503 or a crash.

    Runs in a worker thread beside the event loop, so it keeps the GIL in short stretches: numpy (which releases it
    in its loops), zlib and hashing (which release it too), Python loops in chunks, and while it runs a 1 ms switch
    interval (Python hands the GIL to a waiting thread after 1 ms instead of 5; process-wide, restored after) and no
    cyclic collection (a full one walks every tracked object with the GIL held). Afterwards the process's objects
    go to the permanent generation, so later collections, triggered by the event loop's allocations, skip the
    states' hundreds of thousands of objects; they are still freed by reference counting when a swap drops a state.
    """
    enabled, interval = gc.isenabled(), sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        state = _load(registry, version, cache_size, fallback)
    finally:
        sys.setswitchinterval(interval)
        if enabled:
            gc.enable()
        gc.freeze()
    return state


def _load(registry: ModelRegistry, version: str | None, cache_size: int, fallback: bool) -> ServingState:
    version = version or registry.production()
    if version is None:
        raise NotReady(f"the registry has no production {registry.name} model yet (run the Dagster pipeline)")
    if fallback:
        artifact, skipped = registry.load_serving(version, require_serving=True)
        for bad, why in skipped:
            log.error("not serving model %s: %s", bad, why)
        model = ServingModel(artifact)
    else:
        model = ServingModel(registry.load(version))
    state = build_state(model, cache_size)
    # warm-up: the first kernel call of a process loads its machine code (numba's on-disk cache; compiles on a new
    # machine), and numpy initialises lazily; a user's history, or the most popular game when there are no users.
    warm = state.history_items(0) if state.n_users else np.asarray(model.popular_list[:1], np.int64)
    model.recommend_history(warm, 10)
    return state
