"""What an answer's `request_id` and `event_token` cost /predict, in process: prints figures, asserts nothing.

On the answer cache's hit path (the cheapest answer, where a fixed cost shows most) it times `predict_json` (the
cached bytes and the user id, no token) against the body served over HTTP (`answers.pipeline._answer` +
`AnswerTokens.issue` + `encode.with_answer`), and `AnswerTokens.check` (what `POST /events` pays per request).

    .venv/bin/python bench/bench_event_tokens.py [--n 200000] [--k 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_api.answer_tokens import AnswerTokens  # noqa: E402
from gamerec_api.answers import encode, pipeline  # noqa: E402
from gamerec_api.demo import seed_home  # noqa: E402
from gamerec_api.schemas import PredictRequest  # noqa: E402
from gamerec_api.state import load_state  # noqa: E402
from gamerec_assets import backends  # noqa: E402
from gamerec_assets.settings import StorageSettings  # noqa: E402
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry  # noqa: E402


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Median over 5 rounds of the mean CPU µs per call (CPU time: the machine may be shared)."""
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(n // 5):
            fn()
        rounds.append((time.process_time() - t) / (n // 5) * 1e6)
    return float(np.median(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gamerec-bench-tokens-") as tmp:
        home = Path(tmp) / "home"
        seed_home(home, n_users=200)
        settings = StorageSettings.from_env({"GAMEREC_HOME": str(home)})
        state = load_state(ModelRegistry(backends.artifact_store(settings), MODEL_NAME), cache_size=1000)
        tokens = AnswerTokens(None, home, 86_400)
        req = PredictRequest(user_id="7", k=args.k)
        pipeline.predict_json(state, req, None)  # fills the cache

        def with_token() -> bytes:
            user, rest, _, games = pipeline._answer(state, req, None)
            rid, token = tokens.issue(user, games)
            return encode.with_answer(user, rid, token, rest)

        plain = per_call(lambda: pipeline.predict_json(state, req, None), args.n)
        signed = per_call(with_token, args.n)
        _, token = tokens.issue(b'"7"', pipeline._answer(state, req, None)[3])
        check = per_call(lambda: tokens.check(token.decode()), args.n // 4)
        print(f"cached /predict answer, k={args.k}: {plain:.2f} µs without the token, {signed:.2f} µs with "
              f"request_id + event_token: +{signed - plain:.2f} µs per answer ({len(token)}-byte token)")  # fmt: skip
        print(f"checking an event token (POST /events, once per request): {check:.2f} µs")


if __name__ == "__main__":
    main()
