"""The running experiment as one API worker serves it: its record, the challenger's loaded state, the salted split
and the worker's guardrail. The holder builds it only after the challenger loaded and validated, and replaces it in
one assignment (a traffic change keeps the loaded state and the guardrail's counts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gamerec_api.guardrail import Guardrail
from gamerec_api.state import ServingState
from gamerec_assets.recsys import experiment_ids
from gamerec_assets.recsys.experiment_ids import Attribution
from gamerec_assets.recsys.traffic_split import Splitter
from gamerec_assets.store.experiments import Experiment


@dataclass(eq=False)
class ActiveExperiment:
    """A running experiment as one worker serves it (the challenger loaded and validated before it was set)."""

    record: Experiment
    challenger: ServingState
    splitter: Splitter
    guard: Guardrail = field(default_factory=Guardrail)
    _tags: dict[Attribution, bytes] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.record.name

    def treated(self, user_key: bytes) -> bool:
        return self.splitter.treated(user_key, self.record.traffic)

    def tag(self, attribution: Attribution) -> bytes:
        """The request id suffix of an answer under `attribution` (checked once, then kept)."""
        tag = self._tags.get(attribution)
        if tag is None:
            tag = self._tags[attribution] = experiment_ids.tag("x", attribution)[1:].encode()
        return tag
