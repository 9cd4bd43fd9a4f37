"""What /readyz (and a 503 from a data endpoint) may tell an anonymous client about the model load.

The holder's `detail` is written for operators: a failed load carries the exception text, which names storage
endpoints, buckets, hosts and paths. Public answers therefore say only which of three situations holds, with a
fixed sentence each; the full detail stays in the server log (the holder logs every failed attempt) and in the
bearer-protected `GET /admin/status`.

The status comes from the holder's detail, because the holder sets it before the first state exists: "loading
..." while the first load runs, "loading ... failed: ..." after it failed (so a failed first load is `failed`,
not `loading` for ever), and the NotReady text when there is nothing to load yet (`unavailable`).
"""

from __future__ import annotations

from typing import Literal

NotReadyStatus = Literal["loading", "unavailable", "failed"]

PUBLIC_DETAIL: dict[NotReadyStatus, str] = {
    "loading": "loading the production model",
    "unavailable": "no production item_similarity model (with its tables) to serve yet",
    "failed": "loading the production model failed; the server log has the reason",
}


def not_ready_status(holder_detail: str) -> NotReadyStatus:
    """Classify the holder's detail while no model is served."""
    detail = holder_detail.lower()
    if "failed" in detail:
        return "failed"
    if detail.startswith("loading"):
        return "loading"
    return "unavailable"


def public_detail(holder_detail: str) -> tuple[NotReadyStatus, str]:
    """(status, the fixed sentence for it) for a client that is not an operator."""
    status = not_ready_status(holder_detail)
    return status, PUBLIC_DETAIL[status]
