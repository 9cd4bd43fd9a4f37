"""Benchmark of gamerec_api: prints figures, asserts nothing (timings belong here, not in unit tests).

1. in-process /predict (the controller's function + JSON encoding, no HTTP): p50 / p99;
2. (`--swap`) /predict latency (p50, p99, p99.9, max) at 1,000 req/s while the production model is swapped twice
   (promote, rollback, each with POST /admin/reload), with versions trained on 1,000,000 log rows;
3. over HTTP against `python -m gamerec_api` in a separate process on loopback, with 1 and 2 workers:
   /predict throughput relative to the same server's /healthz throughput (closed loop, as fast as possible), and
   /predict latency at a fixed offered load of 500 requests/s (open loop: latency is measured from the scheduled
   send time, so queueing counts).

With `--overlay-users N` (default 10,000) the temporary home's `interaction_events` gets 3 plays for each of N new
users before the servers start, so every worker's realtime overlay holds N users: "known users" traffic then
measures the hot path of users outside the overlay beside a full one, and "overlay users" traffic the users in it
(history = trained ∪ realtime plays, answers cached per overlay generation). The in-process run reports both too.

Throughput on a small shared VM drifts by +-20 % within seconds, so the closed loop alternates short windows of
/healthz and /predict (`--rounds` pairs of `--window` s) and reports the median and quartiles of the per-pair
ratios, next to the server's CPU time per request (utime + stime of the server's processes, read from /proc).

The model is the production model of $GAMEREC_HOME when it has one (what `make materialize` built), otherwise a
temporary home seeded like the pipeline's defaults (bundled RAWG snapshot, 100 simulated users).
The closed-loop load uses `wrk` when it is installed (requests pre-formatted in each wrk thread's `init`, so the
load generator does the same little work per request for both endpoints), otherwise a small asyncio HTTP/1.1
client (then the client, not the server, may be the bottleneck; it says so). `apt-get install wrk` on Debian.

    .venv/bin/python bench/bench_api.py [--window 2] [--rounds 15] [--duration 10] [--rate 500] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_api.answers import predict_json  # noqa: E402
from gamerec_api.demo import seed_home  # noqa: E402
from gamerec_api.overlay import RealtimeOverlay  # noqa: E402
from gamerec_api.schemas import PredictRequest  # noqa: E402
from gamerec_api.state import ServingState, load_state  # noqa: E402
from gamerec_assets import backends  # noqa: E402
from gamerec_assets.recsys.feedback import check_event, events_until_seq, now_us  # noqa: E402
from gamerec_assets.settings import StorageSettings  # noqa: E402
from gamerec_assets.store.event_store import EventStore  # noqa: E402
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry  # noqa: E402


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


# -- model -------------------------------------------------------------------------------------------------------


def resolve_home(tmp: Path) -> tuple[Path, str]:
    env_home = os.environ.get("GAMEREC_HOME")
    if env_home:
        settings = StorageSettings.from_env({"GAMEREC_HOME": env_home})
        try:
            registry = ModelRegistry(backends.artifact_store(settings), MODEL_NAME)
            version = registry.production()
            if version and registry.load(version).serving is not None:  # the version serves itself, no tables
                return Path(env_home), f"GAMEREC_HOME={env_home} (production {version})"
        except Exception as exc:  # fall back to a seeded home
            print(f"note: GAMEREC_HOME={env_home} is not usable ({exc}); seeding a temporary home")
    seeded = seed_home(tmp / "home", n_users=100)
    return tmp / "home", f"seeded temporary home (snapshot, 100 simulated users, model {seeded.version})"


def request_mix(state: ServingState, n: int, seed: int = 0) -> list[dict]:
    """80% known users, 10% guests liking 3 games (basket), 10% unknown users (popular)."""
    rng = random.Random(seed)
    users = state.user_ids(range(state.n_users))
    games = [c.game_id for c in state.cards]
    out = []
    for _ in range(n):
        x = rng.random()
        if x < 0.8:
            out.append({"user_id": rng.choice(users), "k": 10})
        elif x < 0.9:
            out.append({"user_id": 0, "k": 10, "liked_game_ids": rng.sample(games, 3)})
        else:
            out.append({"user_id": f"guest-{rng.randrange(1000)}", "k": 10})  # never in the overlay (rt-*)
    return out


def seed_overlay(home: Path, state: ServingState, n_users: int, plays: int = 3, seed: int = 4) -> list[str]:
    """Append `plays` plays of random games for each of `n_users` new users to the home's interaction_events
    (only ever a temporary home: a benchmark never writes events into a real one). Returns their ids."""
    store = EventStore(backends.table_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)})))
    rng = np.random.default_rng(seed)
    games = np.asarray([c.game_id for c in state.cards])
    users = [f"rt-{i}" for i in range(n_users)]
    received = now_us()
    events = [
        check_event(user_id=u, game_id=int(g), type="play", value=None, timestamp=None, received_us=received)
        for u in users
        for g in rng.choice(games, plays, replace=False)
    ]
    for lo in range(0, len(events), 500):
        store.append(events[lo : lo + 500])
    return users


def load_overlay(home: Path, state: ServingState) -> RealtimeOverlay:
    """What a worker's tail builds: every event after the served model's seq."""
    overlay = RealtimeOverlay()
    overlay.align(events_until_seq(state.model.artifact.manifest))
    store = EventStore(backends.table_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)})))
    while overlay.poll(store):
        pass
    return overlay


def bench_in_process(
    state: ServingState, n: int = 20_000, overlay: RealtimeOverlay | None = None, overlay_users: list[str] | None = None
) -> None:
    """Without the answer cache (the state is loaded with cache_size=0): every request is computed."""
    reqs = [msgspec.convert(b, PredictRequest) for b in request_mix(state, n)]
    users = overlay.users if overlay is not None else None
    for r in reqs[:500]:
        predict_json(state, r, users)
    times = np.empty(n)
    sources = []
    clock = time.perf_counter
    for i, r in enumerate(reqs):
        t = clock()
        _, source = predict_json(state, r, users)
        times[i] = clock() - t
        sources.append(source)
    beside = f", beside an overlay of {len(overlay):,} users" if overlay is not None else ""
    print(
        f"in-process predict, computed (answer cache off): {n} requests, {state.model.n_items} games, "
        f"{state.n_users} users, {state.model.similarity.nnz} neighbour pairs{beside}: p50 {ms(pct(times, 50))}  "
        f"p99 {ms(pct(times, 99))}  max {ms(times.max())}  (target p99 <= 1 ms)"
    )
    if overlay is not None and overlay_users:
        rng = random.Random(5)
        picks = [msgspec.convert({"user_id": rng.choice(overlay_users), "k": 10}, PredictRequest) for _ in range(n)]
        t_over = np.empty(n)
        for i, r in enumerate(picks):
            t = clock()
            predict_json(state, r, users)
            t_over[i] = clock() - t
        print(
            f"    overlay users (3 realtime plays, new to the model) {n:6d} requests: p50 {ms(pct(t_over, 50))}  "
            f"p99 {ms(pct(t_over, 99))}"
        )
    kinds = np.asarray(sources)
    for kind in ("item_cf", "basket", "popular"):
        sel = times[kinds == kind]
        if sel.size:
            print(f"    {kind:8s} {sel.size:6d} requests: p50 {ms(pct(sel, 50))}  p99 {ms(pct(sel, 99))}")


# -- server ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(home: Path, workers: int, cache: bool = True, admin_token: str | None = None) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home), "PYTHONPATH": str(ROOT), "GAMEREC_RELOAD_INTERVAL": "0"}
    if not cache:
        env["GAMEREC_PREDICT_CACHE"] = "0"
    env.pop("GAMEREC_ADMIN_TOKEN", None)
    if admin_token:
        env["GAMEREC_ADMIN_TOKEN"] = admin_token
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gamerec_api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ok = 0
        with httpx.Client(base_url=base, timeout=2) as c:
            while ok < 20 * workers:  # every worker answers ready (requests spread over the workers)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not become ready (exit code {proc.poll()})")
                try:
                    ok = ok + 1 if c.get("/readyz").status_code == 200 else 0
                except httpx.TransportError:
                    ok = 0
                time.sleep(0.01)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_overlay(base: str, n: int, timeout: float = 60.0) -> None:
    """Until the workers' overlays hold n users (gamerec_overlay_users, the workers' maximum), plus a second for
    the other workers' tails."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5) as c:
        while time.monotonic() < deadline:
            m = re.search(r"^gamerec_overlay_users(?:\{[^}]*\})? ([\d.e+]+)$", c.get("/metrics").text, re.M)
            if m and float(m.group(1)) >= n:
                time.sleep(1.0)
                return
            time.sleep(0.1)
    raise RuntimeError(f"the servers' overlays did not reach {n} users")


# -- closed-loop throughput ----------------------------------------------------------------------------------------

# Each wrk thread formats its requests once (init), then picks one at random per request.
WRK_BODIES = """
local bodies = {%s}
local reqs = {}
init = function(args)
  local headers = {["Content-Type"] = "application/json"}
  for i, body in ipairs(bodies) do reqs[i] = wrk.format("POST", "/predict", headers, body) end
end
request = function() return reqs[math.random(#reqs)] end
"""


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of the server process and its live descendants (uvicorn's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def wrk_run(base: str, path: str, duration: float, bodies: list[bytes], tmp: Path, threads: int) -> dict:
    args = ["wrk", f"-t{threads}", "-c32", f"-d{duration:.0f}s", "--latency"]
    url = base + path
    if path == "/predict":
        script = tmp / "predict.lua"
        script.write_text(WRK_BODIES % ",".join("'" + b.decode() + "'" for b in bodies))
        args += ["-s", str(script)]
        url = base + "/"
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)$", out, re.M)
    return {"rps": rps, "n": n, "p99": p99.group(1) if p99 else "?", "errors": int(non2xx.group(1)) if non2xx else 0}


class RawClient:
    """Minimal keep-alive HTTP/1.1 client on asyncio streams: far cheaper per request than httpx."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if m:
            await self.reader.readexactly(int(m.group(1)))
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def raw_request(path: str, body: bytes | None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def python_run(base: str, path: str, duration: float, bodies: list[bytes], conns: int = 16) -> dict:
    host, port = base.removeprefix("http://").split(":")
    raws = [raw_request(path, b) for b in bodies] if path == "/predict" else [raw_request(path, None)]

    async def run() -> tuple[int, int]:
        done = errors = 0
        stop = time.perf_counter() + duration

        async def worker(n: int) -> None:
            nonlocal done, errors
            client = RawClient(host, int(port))
            i = n
            try:
                while time.perf_counter() < stop:
                    status = await client.request(raws[i % len(raws)])
                    i += conns
                    done += 1
                    errors += status != 200
            finally:
                client.close()

        await asyncio.gather(*(worker(n) for n in range(conns)))
        return done, errors

    done, errors = asyncio.run(run())
    return {"rps": done / duration, "n": done, "p99": "?", "errors": errors}


# -- open-loop fixed rate --------------------------------------------------------------------------------------------


def fixed_rate(base: str, bodies: list[bytes], rate: float, duration: float, conns: int = 64) -> dict[str, float]:
    """Send at t0 + i/rate regardless of responses; latency = completion - scheduled time."""
    host, port = base.removeprefix("http://").split(":")
    raws = [raw_request("/predict", b) for b in bodies]
    n = int(rate * duration)

    async def run() -> tuple[np.ndarray, int]:
        pool: asyncio.Queue[RawClient] = asyncio.Queue()
        for _ in range(conns):
            pool.put_nowait(RawClient(host, int(port)))
        lat = np.full(n, np.nan)
        errors = 0
        clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
        t0 = clock() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = t0 + i / rate
            client = await pool.get()
            try:
                status = await client.request(raws[i % len(raws)])
                errors += status != 200
            finally:
                pool.put_nowait(client)
            lat[i] = clock() - scheduled

        tasks = []
        for i in range(n):
            delay = t0 + i / rate - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        while not pool.empty():
            pool.get_nowait().close()
        return lat, errors

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    # This process holds a loaded ServingState (the in-process run): a full collection of its heap in the middle of
    # the run would show up as a client-side stall of ~100 ms in the latencies. The load generator runs without GC.
    gc.collect()
    gc.disable()
    try:
        lat, errors = asyncio.run(run())
    finally:
        gc.enable()
    return {
        "n": n,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": float(np.nanmax(lat)),
        "errors": errors,
        "lat": lat,
    }


# -- a model swap under load ------------------------------------------------------------------------------------------

SWAP_TOKEN = "bench-admin-token"


def swap_home(tmp: Path, rows: int) -> tuple[Path, str, str, int]:
    """A home whose production version was trained on ~`rows` simulated log rows, and a second version to swap to."""
    from gamerec_assets.recsys.model_artifact import ModelArtifact

    n_users = max(100, int(rows / 5.5))  # the simulation draws 1..10 games per user
    seeded = seed_home(tmp / "swap-home", n_users=n_users, max_games=10, batch=False)
    registry = ModelRegistry(backends.artifact_store(seeded.settings), MODEL_NAME)
    a = registry.load(seeded.version)
    other = registry.publish(ModelArtifact(a.item_ids, a.similarity, a.popularity, {"parameters": {}}, a.serving))
    return tmp / "swap-home", seeded.version, other, seeded.logs.height


def bench_swap(tmp: Path, rows: int, rate: float, duration: float) -> None:
    """Open-loop /predict at `rate` req/s while the production alias moves twice (promote, then rollback) and the
    server reloads each time (POST /admin/reload): the latency of requests sent during a reload shows whether
    the load stalls the event loop. Prints p50 / p99 / p99.9 / max over the whole run and over the swap windows."""
    import threading

    home, v1, v2, n_rows = swap_home(tmp, rows)
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)})), MODEL_NAME)
    state = load_state(registry)
    bodies = [msgspec.json.encode(b) for b in request_mix(state, 2000, seed=3)]
    print(f"swap: {n_rows:,} log rows, {state.n_users:,} users, {state.model.n_items} games; versions {v1} <-> {v2}")
    del state
    gc.collect()
    windows: list[tuple[float, float]] = []
    with server(home, 1, admin_token=SWAP_TOKEN) as (base, _):
        auth = {"Authorization": f"Bearer {SWAP_TOKEN}"}

        alias_key = f"{MODEL_NAME}/_aliases/production.json"

        def move_alias(version: str) -> None:
            """Point the alias at a version already validated at publish, with one object write: `promote` would
            load and validate it here, and that would stall this load generator's own event loop."""
            registry.store.replace(alias_key, msgspec.json.encode({"version": version, "previous": []}))

        def swapper(start: float) -> None:
            with httpx.Client(base_url=base, timeout=120) as c:
                for at, version in ((duration / 3, v2), (2 * duration / 3, v1)):
                    time.sleep(max(0.0, start + at - time.perf_counter()))
                    move_alias(version)
                    t = time.perf_counter()
                    r = c.post("/admin/reload", headers=auth)
                    windows.append((t - start, time.perf_counter() - start))
                    print(f"    reload -> {r.json().get('model_version')} in {windows[-1][1] - windows[-1][0]:.2f} s")

        start = time.perf_counter() + 0.05  # fixed_rate's t0
        thread = threading.Thread(target=swapper, args=(start,), daemon=True)
        thread.start()
        r = fixed_rate(base, bodies, rate, duration)
        thread.join()
    lat = r["lat"]
    sent = np.arange(len(lat)) / rate
    during = np.zeros(len(lat), bool)
    for lo, hi in windows:
        during |= (sent >= lo) & (sent <= hi + 0.1)

    before = sent < (windows[0][0] if windows else duration)

    def line(sel: np.ndarray) -> str:
        x = lat[sel]
        return (
            f"{x.size} requests: p50 {ms(pct(x, 50))}  p99 {ms(pct(x, 99))}  p99.9 {ms(pct(x, 99.9))}  "
            f"max {ms(float(np.nanmax(x)))}"
        )

    print(
        f"swap under load at {rate:.0f} req/s for {duration:.0f}s, {len(windows)} reloads "
        f"({', '.join(f'{lo:.1f}-{hi:.1f} s' for lo, hi in windows)}), non-200 {r['errors']}:"
    )
    print(f"    whole run     {line(np.ones(len(lat), bool))}")
    print(f"    before swaps  {line(before)}")
    if during.any():
        print(f"    during swaps  {line(during)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the fixed-rate latency run")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per closed-loop throughput window")
    parser.add_argument("--rounds", type=int, default=15, help="alternating /healthz, /predict windows (median)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1 leaves a core to the server)")
    parser.add_argument("--rate", type=float, default=500.0, help="offered load for the latency run (req/s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator even with wrk")
    parser.add_argument("--swap", action="store_true", help="only the model-swap-under-load run")
    parser.add_argument("--swap-rows", type=int, default=1_000_000, help="log rows of the swapped versions")
    parser.add_argument("--swap-rate", type=float, default=1000.0, help="offered load during the swaps (req/s)")
    parser.add_argument("--swap-duration", type=float, default=12.0, help="seconds of the swap run")
    parser.add_argument(
        "--overlay-users", type=int, default=10_000, help="new users with realtime plays in each worker's overlay"
    )
    args = parser.parse_args()
    if args.swap:
        tmp = Path(tempfile.mkdtemp(prefix="gamerec-bench-"))
        try:
            bench_swap(tmp, args.swap_rows, args.swap_rate, args.swap_duration)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return

    tmp = Path(tempfile.mkdtemp(prefix="gamerec-bench-"))
    try:
        home, what = resolve_home(tmp)
        print(f"model: {what}")
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
        state = load_state(
            ModelRegistry(backends.artifact_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)})), MODEL_NAME)
        )
        overlay_users: list[str] = []
        overlay = None
        if args.overlay_users and home.is_relative_to(tmp):
            overlay_users = seed_overlay(home, state, args.overlay_users)
            overlay = load_overlay(home, state)
            print(f"realtime overlay: {len(overlay):,} new users with 3 plays each in interaction_events")
        elif args.overlay_users:
            print("note: no realtime overlay (events are only written into a temporary home, not GAMEREC_HOME)")
        bench_in_process(state, overlay=overlay, overlay_users=overlay_users)

        bodies = [msgspec.json.encode(b) for b in request_mix(state, 2000, seed=1)]
        rng = random.Random(2)
        known = [
            msgspec.json.encode({"user_id": u, "k": 10})
            for u in rng.choices(state.user_ids(range(state.n_users)), k=1000)
        ]
        traffic_kinds = [("known users", known), ("mixed traffic", bodies)]
        if overlay_users:
            traffic_kinds.append(
                (
                    "overlay users",
                    [msgspec.json.encode({"user_id": u, "k": 10}) for u in rng.choices(overlay_users, k=1000)],
                )
            )
        use_wrk = shutil.which("wrk") is not None and not args.python_client
        print(
            f"HTTP load generator: {f'wrk -t{args.wrk_threads} -c32' if use_wrk else 'Python asyncio (16 connections)'}"
            f"; {args.rounds} alternating windows of {args.window:.0f}s per endpoint"
        )

        def closed_loop(base: str, pid: int, path: str, reqs: list[bytes]) -> dict:
            cpu = server_cpu_seconds(pid)
            if use_wrk:
                r = wrk_run(base, path, args.window, reqs, tmp, args.wrk_threads)
            else:
                r = python_run(base, path, args.window, reqs)
            r["cpu_us"] = (server_cpu_seconds(pid) - cpu) / max(r["n"], 1) * 1e6
            return r

        for workers in args.workers:
            for cache in (True, False):
                label = f"[workers={workers}, answer cache {'on' if cache else 'off'}]"
                with server(home, workers, cache) as (base, pid):
                    if overlay_users:
                        wait_overlay(base, len(overlay_users))
                    for traffic, reqs in traffic_kinds:
                        rounds = []
                        for _ in range(args.rounds):
                            health = closed_loop(base, pid, "/healthz", [])
                            pred = closed_loop(base, pid, "/predict", reqs)
                            rounds.append((health, pred))
                        ratios = sorted(p["rps"] / h["rps"] for h, p in rounds)
                        q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
                        cpu_h = statistics.median(h["cpu_us"] for h, _ in rounds)
                        cpu_p = statistics.median(p["cpu_us"] for _, p in rounds)
                        errors = sum(h["errors"] + p["errors"] for h, p in rounds)
                        print(
                            f"{label} {traffic}: /healthz {statistics.median(h['rps'] for h, _ in rounds):,.0f} "
                            f"req/s, /predict {statistics.median(p['rps'] for _, p in rounds):,.0f} req/s; "
                            f"predict/healthz median {statistics.median(ratios):.0%} "
                            f"(quartiles {q1:.0%}-{q3:.0%} of {len(ratios)} pairs; target >= 70%); server CPU per "
                            f"request {cpu_h:.0f} vs {cpu_p:.0f} us ({cpu_h / cpu_p:.0%}); wrk p99 "
                            f"{rounds[-1][0]['p99']} / {rounds[-1][1]['p99']}"
                            + (f"; NON-2XX {errors}" if errors else "")
                        )
                    r = fixed_rate(base, bodies, args.rate, args.duration)
                    print(
                        f"{label} /predict at {args.rate:.0f} req/s offered for {args.duration:.0f}s "
                        f"({r['n']:.0f} requests, mixed users/baskets/guests): p50 {ms(r['p50'])}  "
                        f"p99 {ms(r['p99'])}  max {ms(r['max'])}  non-200 {r['errors']:.0f}  (target p99 <= 10 ms)"
                    )
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes on the machine skew every figure)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
