"""A worker's view of the forgotten players: which users to hide in the served versions and drop from the overlay.

A forget (`gamerec users forget ID`, `DELETE /admin/users/{id}`, on any worker or none) is recorded in the
`forgotten_users` table before anything is erased. A deletion never shows in the events tail, so every worker reads
that table by `seq` with each events poll (and before it swaps in a newly loaded version), and for each new forget:
- drops the user from its realtime overlay (and ignores their events up to the forget's `until_seq`);
- masks the user in the versions it serves (production and a running challenger, `ServingState.mask`): no trained
  history, no batch rows, not listed, /predict answers as for a new user, history 404. A version trained after the
  forget (its `events_until_seq` beyond the forget's `until_seq`) no longer holds the erased history: a user who came
  back and played since is served from it normally.
The forgotten users are few (one dict entry each); a fresh worker reads them all before serving its first version.
"""

from __future__ import annotations

import threading

from gamerec_api.state import ServingState
from gamerec_assets.recsys.feedback import events_until_seq
from gamerec_assets.store.forgotten_users import Forget, ForgottenUsers


class ForgottenMask:
    """The forgotten users this worker has read (UTF-8 id -> the forget's until_seq), and the last seq read."""

    def __init__(self) -> None:
        self.users: dict[bytes, int] = {}
        self.seq = 0
        self._lock = threading.Lock()

    def sync(self, store: ForgottenUsers) -> list[Forget]:
        """Read the forgets recorded since the last read (in a worker thread); the new ones."""
        with self._lock:
            new = store.since(self.seq)
            for f in new:
                key = f.user_id.encode()
                self.users[key] = max(f.until_seq, self.users.get(key, f.until_seq))
                self.seq = max(self.seq, f.seq)
        return new

    def mask(self, state: ServingState, keys: list[bytes] | None = None) -> int:
        """Hide the forgotten users (`keys`: only these) in `state` when it was trained before their forget; the
        number newly hidden."""
        trained_until = events_until_seq(state.model.artifact.manifest)
        users = self.users
        hidden = 0
        for key in list(users) if keys is None else keys:
            until = users.get(key)
            if until is not None and trained_until <= until and key not in state.masked:
                hidden += state.mask(key)
        return hidden
