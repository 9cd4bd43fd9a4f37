"""Users for the page's picker (by id prefix), their play history, and the precomputed (batch) recommendations.

Everything comes from the served version: its users, its histories, and batch rows only when that version made
them. `GET /users/{id}/recommendations` reads the `batch_recommendations` table and serves its rows (`source:
batch`) only when their `model_version` is the served one; otherwise (another version's rows, none, or the table
store is down) it computes the same top-10 from the served model (`source: computed`, with the table's version in
`batch_model_version`), so an answer never presents one version's results as another's.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import anyio.to_thread
import msgspec
import polars as pl
from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter

from gamerec_api.controllers.common import ERRORS_READ, ModelLoading, holder_of, serving
from gamerec_api.predict_answer import BadUserId, user_key
from gamerec_api.schemas import (
    MAX_ID,
    MAX_USER_ID,
    BatchItem,
    BatchResponse,
    HistoryResponse,
    UsersResponse,
    UserSummary,
)
from gamerec_api.state import ServingState
from gamerec_assets.store.table_store import TableStoreError

log = logging.getLogger("gamerec_api")
UserPath = Annotated[str, Parameter(min_length=1, max_length=MAX_USER_ID, description="user id (its string form)")]
BATCH_TABLE = "batch_recommendations"
BATCH_K = 10
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_INTEGER_TYPES = (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt64, pl.UInt32, pl.UInt16, pl.UInt8)


class UserHistoryResponse(HistoryResponse):
    """The history the answers are scored from: the served version's, minus disliked games, plus the games played
    since (realtime events), listed after the version's games and named in `realtime_game_ids`."""

    realtime_game_ids: list[int] = msgspec.field(default_factory=list)


def _key(user_id: str) -> bytes:
    try:
        return user_key(user_id)[1]
    except BadUserId as exc:
        raise ValidationException(detail=str(exc)) from exc


def simulated(source: str | None) -> bool | None:
    if source is None:
        return None
    return "simul" in source.lower()


class UsersController(Controller):
    path = "/users"
    tags = ("users",)

    @get("", summary="Users of the served version, by id prefix", raises=[ModelLoading])
    async def users(
        self,
        state: State,
        prefix: Annotated[
            str, Parameter(max_length=MAX_USER_ID, description="ids starting with this text (empty: everyone)")
        ] = "",
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> UsersResponse:
        """Ids in UTF-8 byte order (so "10" comes before "7"); two binary searches, whatever the number of users."""
        current = serving(state)
        _key(prefix)
        rows = current.user_rows_with_prefix(prefix)
        page = rows[offset : offset + limit]
        ids = current.user_ids(page)
        counts = current.games_played(page.start, page.stop) if len(page) else []
        return UsersResponse(
            model_version=current.version,
            prefix=prefix,
            total=len(rows),
            items=[UserSummary(u, c) for u, c in zip(ids, counts, strict=True)],
            interaction_source=current.source,
            simulated=simulated(current.source),
        )

    @get("/{user_id:str}/history", summary="Games a user played (in the served version)", raises=ERRORS_READ)
    async def history(self, state: State, user_id: UserPath) -> UserHistoryResponse:
        """Realtime games the served version does not know have no card and are left out."""
        current = serving(state)
        key = _key(user_id)
        played = current.history(key)
        realtime: list[int] = []
        extra = holder_of(state).overlay.users.get(key)
        if extra is not None:
            pos = current.model.item_pos.get
            disliked = {pos(g, -1) for g in extra.excluded}
            trained = set(played)
            played = [i for i in played if i not in disliked]
            for g in extra.added:
                i = pos(g, -1)
                if i >= 0 and i not in trained:
                    played.append(i)
                    realtime.append(g)
        if not played:
            raise NotFoundException(detail=f"user {user_id} has no play history in model {current.version}")
        return UserHistoryResponse(
            user_id=user_id,
            model_version=current.version,
            items=[current.cards[i] for i in played],
            realtime_game_ids=realtime,
        )

    @get(
        "/{user_id:str}/recommendations",
        summary="Precomputed recommendations of the served version (batch_recommendations asset)",
        raises=ERRORS_READ,
    )
    async def recommendations(self, state: State, user_id: UserPath) -> BatchResponse:
        current = serving(state)  # read once: the answer is this version's, whatever a swap does meanwhile
        key = _key(user_id)
        table_version, rows = await anyio.to_thread.run_sync(_batch_rows, state, user_id)
        if rows is not None and table_version == current.version:
            return _from_batch(current, user_id, rows)
        row = current.user_row(key)
        if row < 0 and rows is None:
            raise NotFoundException(detail=f"unknown user {user_id}: no history in model {current.version}")
        rec = current.model.recommend_history(current.history_items(row), BATCH_K)
        cards = current.cards
        items = [
            BatchItem(
                rank=rank,
                game_id=c.game_id,
                name=c.name,
                score=round(score, 6),
                source="item_cf" if rank <= rec.n_cf else "popular",
                genres=c.genres,
                rating=c.rating,
                background_image=c.background_image,
            )
            for rank, (c, score) in enumerate(zip((cards[i] for i in rec.idx), rec.scores, strict=True), start=1)
        ]
        return BatchResponse(
            user_id=user_id,
            model_version=current.version,
            source="computed",
            items=items,
            batch_model_version=table_version,
        )


def _batch_rows(state: State, user_id: str) -> tuple[str | None, list[tuple[int, int, float, str]] | None]:
    """(the table's model version for this user, its rows by rank), (None, None) when there are none or the table
    store fails (logged: the reason names hosts and paths, the client only sees `computed`)."""
    try:
        tables = holder_of(state).tables()
        if not tables.exists(BATCH_TABLE):
            return None, None
        numeric = tables.schema(BATCH_TABLE).get("user_id") in _INTEGER_TYPES
        if numeric and not (_DECIMAL.fullmatch(user_id) and int(user_id) <= MAX_ID):
            return None, None  # an integer column holds no such user (and MySQL would coerce 'abc' to 0)
        value: int | str = int(user_id) if numeric else user_id
        frame = tables.read(BATCH_TABLE, where={"user_id": value}, order_by=["rank"])
    except TableStoreError as exc:
        log.warning("batch recommendations: the table store failed: %s", exc)
        return None, None
    if frame.height == 0:
        return None, None
    rows = list(
        zip(
            frame["rank"].to_list(),
            frame["game_id"].to_list(),
            frame["score"].to_list(),
            frame["source"].to_list(),
            strict=True,
        )
    )
    return str(frame["model_version"][0]), rows


def _from_batch(current: ServingState, user_id: str, rows: list[tuple[int, int, float, str]]) -> BatchResponse:
    items = []
    for rank, game_id, score, source in rows:
        idx = current.model.item_index(game_id)
        card = current.cards[idx] if idx >= 0 else None
        items.append(
            BatchItem(
                rank=rank,
                game_id=game_id,
                name=card.name if card else f"Game {game_id}",
                score=round(score, 6),
                source="item_cf" if source == "item_cf" else "popular",
                genres=card.genres if card else [],
                rating=card.rating if card else 0.0,
                background_image=card.background_image if card else "",
            )
        )
    return BatchResponse(
        user_id=user_id, model_version=current.version, source="batch", items=items, batch_model_version=current.version
    )
