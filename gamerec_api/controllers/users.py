"""Users for the page's picker, their play history, and the precomputed (batch) recommendations."""

from __future__ import annotations

import logging
from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import Parameter

from gamerec_api.controllers.common import ERRORS_READ, ModelLoading, holder_of, serving
from gamerec_api.schemas import (
    MAX_ID,
    BatchItem,
    BatchResponse,
    HistoryResponse,
    UsersResponse,
    UserSummary,
)
from gamerec_assets.store.table_store import TableStoreError

log = logging.getLogger("gamerec_api")
UserPath = Annotated[int, Parameter(ge=0, le=MAX_ID, description="user id")]
BATCH_TABLE = "batch_recommendations"


class UsersController(Controller):
    path = "/users"
    tags = ("users",)

    @get("", summary="Users with a play history", raises=[ModelLoading])
    async def users(
        self,
        state: State,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> UsersResponse:
        current = serving(state)
        ids = current.user_ids[offset : offset + limit]
        counts = (
            current.hist_indptr[offset + 1 : offset + 1 + ids.size] - current.hist_indptr[offset : offset + ids.size]
        )
        return UsersResponse(
            total=int(current.user_ids.size),
            items=[UserSummary(u, c) for u, c in zip(ids.tolist(), counts.tolist(), strict=True)],
        )

    @get("/{user_id:int}/history", summary="Games a user played", raises=ERRORS_READ)
    async def history(self, state: State, user_id: UserPath) -> HistoryResponse:
        current = serving(state)
        played = current.history(user_id)
        if not played:
            raise NotFoundException(detail=f"user {user_id} has no play history")
        return HistoryResponse(user_id=user_id, items=[current.cards[i] for i in played])

    @get(
        "/{user_id:int}/recommendations",
        summary="Precomputed recommendations (batch_recommendations asset)",
        raises=[NotFoundException, ServiceUnavailableException],
        sync_to_thread=True,
    )
    def recommendations(self, state: State, user_id: UserPath) -> BatchResponse:
        """Read from the table store (not the in-memory model): `model_version` is the model that made them."""
        holder = holder_of(state)
        try:
            tables = holder.tables()
            if not tables.exists(BATCH_TABLE):
                raise NotFoundException(detail=f"no batch recommendations yet: table {BATCH_TABLE} does not exist")
            rows = tables.read(BATCH_TABLE, where={"user_id": user_id}, order_by=["rank"])
        except TableStoreError as exc:  # the reason (hosts, paths) goes to the log, not to the client
            log.warning("batch recommendations: the table store failed: %s", exc)
            raise ServiceUnavailableException(detail="the table store is unavailable") from exc
        if rows.height == 0:
            raise NotFoundException(detail=f"unknown user {user_id}: no batch recommendations for this user")
        current = holder.state
        items = []
        for rank, game_id, score, source in zip(
            rows["rank"].to_list(),
            rows["game_id"].to_list(),
            rows["score"].to_list(),
            rows["source"].to_list(),
            strict=True,
        ):
            card = current.cards[i] if current is not None and (i := current.model.item_index(game_id)) >= 0 else None
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
        return BatchResponse(user_id=user_id, model_version=rows["model_version"][0], source="batch", items=items)
