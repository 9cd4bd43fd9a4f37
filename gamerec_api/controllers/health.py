"""Liveness, readiness, and the bearer-protected reload and forget."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi.datastructures import ResponseSpec

from gamerec_api.admin_access import ADMIN_ERRORS, require_admin_token
from gamerec_api.controllers.common import holder_of
from gamerec_api.controllers.users import UserPath
from gamerec_api.readiness import public_detail
from gamerec_api.schemas import ForgetResult, Health, Ready, ReloadResult
from gamerec_api.state import NotReady
from gamerec_assets.store.table_store import TableStoreError


class HealthController(Controller):
    path = "/"
    tags = ("health",)

    @get("/healthz", summary="Alive (the process answers)")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Ready: 200 with the served model version once loaded, 503 before",
        responses={503: ResponseSpec(Ready, description="no model loaded yet (the detail says why)")},
    )
    async def readyz(self, state: State) -> Response[Ready]:
        holder = holder_of(state)
        current = holder.state
        if current is None:  # a fixed public sentence: the holder's detail may name storage hosts and buckets
            status, detail = public_detail(holder.detail)
            return Response(Ready(status=status, model_version=None, detail=detail), status_code=503)
        return Response(Ready(status="ready", model_version=current.version))


class AdminController(Controller):
    """Registered only when GAMEREC_ADMIN_TOKEN is set (otherwise the path is a 404)."""

    path = "/admin"
    tags = ("admin",)
    guards = (require_admin_token,)  # bearer token, failed guesses rate-limited per client address

    @post(
        "/reload",
        status_code=200,
        summary="Reload the production model now (bearer token)",
        raises=[*ADMIN_ERRORS, ServiceUnavailableException],
        security=[{"bearer": []}],
    )
    async def reload(self, state: State) -> ReloadResult:
        """Loads in a worker thread and swaps atomically; requests keep being served by the old model meanwhile."""
        try:
            holder = holder_of(state)
            result = await holder.reload(force=True)
            await holder.poll_experiment()
            return result
        except NotReady as exc:
            raise ServiceUnavailableException(detail=str(exc)) from exc
        except Exception as exc:
            raise ServiceUnavailableException(
                detail=f"reload failed, still serving the previous model: {type(exc).__name__}: {exc}"
            ) from exc

    @delete(
        "/users/{user_id:str}",
        status_code=200,
        summary="Forget a player: erase their events and rows, mask them in the served model (bearer token)",
        raises=[*ADMIN_ERRORS, ServiceUnavailableException],
        security=[{"bearer": []}],
    )
    async def forget_user(self, state: State, user_id: UserPath) -> ForgetResult:
        """`gamerec users forget ID` through the API: recorded first, then erased (README: Forgetting a player).
        This worker masks the user before answering; the others within their events poll. Safe to repeat: a
        503 (the table database failed halfway) is fixed by sending it again."""
        holder = holder_of(state)
        try:
            report = await holder.forget_player(user_id)
        except TableStoreError as exc:
            raise ServiceUnavailableException(
                detail=f"forgetting user {user_id!r} failed; send the request again (a forget is safe to repeat): {exc}"
            ) from exc
        current = holder.state
        return ForgetResult(
            user_id=user_id,
            forget_seq=report.seq,
            events_until_seq=report.until_seq,
            deleted=report.deleted,
            model_version=current.version if current is not None else None,
        )
