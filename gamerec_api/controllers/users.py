"""Users for the page's picker (by id prefix), their play history, and the precomputed (batch) recommendations.

Everything comes from the served version: its users, its histories, and batch rows only when that version made
them. `GET /users/{id}/recommendations` reads the `batch_recommendations` table and serves its rows (`source:
batch`) only when their `model_version` is the served one; otherwise (another version's rows, none, or the table
store is down) it computes the same top-10 from the served model (`source: computed`, with the table's version in
`batch_model_version`), so an answer never presents one version's results as another's.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import Parameter

from gamerec_api import answers
from gamerec_api.controllers.common import ERRORS_READ, ModelLoading, holder_of, serving
from gamerec_api.schemas import MAX_USER_ID, BatchResponse, UserHistoryResponse, UsersResponse, UserSummary

UserPath = Annotated[str, Parameter(min_length=1, max_length=MAX_USER_ID, description="user id (its string form)")]


def simulated(source: str | None) -> bool | None:
    """Whether the players are made up: the `simulated` source (None: the version does not say)."""
    return None if source is None else source == "simulated"


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
        answers.user_key(prefix)  # 400 for a prefix that is no valid text
        rows = current.user_rows_with_prefix(prefix)
        if current.masked:  # forgotten users are not listed
            total, listed = current.listed_rows(rows, offset, limit)
            items = [UserSummary(u, c) for u, c in current.listed(listed)]
        else:
            page = rows[offset : offset + limit]
            ids = current.user_ids(page)
            counts = current.games_played(page.start, page.stop) if len(page) else []
            total, items = len(rows), [UserSummary(u, c) for u, c in zip(ids, counts, strict=True)]
        return UsersResponse(
            model_version=current.version,
            prefix=prefix,
            total=total,
            items=items,
            interaction_source=current.source,
            simulated=simulated(current.source),
            catalog_source=current.catalog_source,
        )

    @get("/{user_id:str}/history", summary="Games a user played (in the served version)", raises=ERRORS_READ)
    async def history(self, state: State, user_id: UserPath) -> UserHistoryResponse:
        """Realtime games the served version does not know have no card and are left out."""
        return answers.history(holder_of(state), user_id)

    @get(
        "/{user_id:str}/recommendations",
        summary="Precomputed recommendations of the served version (batch_recommendations asset)",
        raises=ERRORS_READ,
    )
    async def recommendations(self, state: State, user_id: UserPath) -> BatchResponse:
        return await answers.recommendations(holder_of(state), user_id, state.event_auth.tokens)
