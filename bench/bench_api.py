"""Benchmark of gamerec_api: prints figures, asserts nothing (timings belong here, not in unit tests).

1. in-process /predict (the controller's function + JSON encoding, no HTTP): p50 / p99;
2. over HTTP against `python -m gamerec_api` in a separate process on loopback, with 1 and 2 workers:
   /predict throughput relative to the same server's /healthz throughput (closed loop, as fast as possible),
   and /predict latency at a fixed offered load of 500 requests/s (open loop: latency is measured from the
   scheduled send time, so queueing counts).

The model is the production model of $GAMEREC_HOME when it has one (what `make materialize` built), otherwise a
temporary home seeded like the pipeline's defaults (bundled RAWG snapshot, 100 simulated users).
The closed-loop load uses `wrk` when it is installed (Lua script picks a random user per request), otherwise a
small asyncio HTTP/1.1 client (then the client, not the server, may be the bottleneck; it says so).

    .venv/bin/python bench/bench_api.py [--duration 10] [--rate 500] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import socket
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

from gamerec_api.demo import seed_home  # noqa: E402
from gamerec_api.schemas import PredictRequest  # noqa: E402
from gamerec_api.service import predict_json  # noqa: E402
from gamerec_api.state import MODEL_NAME, ServingState, load_state  # noqa: E402
from gamerec_assets.store.registry import ModelRegistry  # noqa: E402
from gamerec_assets.store.settings import StorageSettings  # noqa: E402


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
            tables = settings.table_store()
            version = ModelRegistry(settings.artifact_store(), MODEL_NAME).production()
            if version and tables.exists("game_features") and tables.exists("user_logs"):
                return Path(env_home), f"GAMEREC_HOME={env_home} (production {version})"
        except Exception as exc:  # fall back to a seeded home
            print(f"note: GAMEREC_HOME={env_home} is not usable ({exc}); seeding a temporary home")
    seeded = seed_home(tmp / "home", n_users=100)
    return tmp / "home", f"seeded temporary home (snapshot, 100 simulated users, model {seeded.version})"


def request_mix(state: ServingState, n: int, seed: int = 0) -> list[dict]:
    """80% known users, 10% guests liking 3 games (basket), 10% unknown users (popular)."""
    rng = random.Random(seed)
    users = state.user_ids.tolist()
    games = [c.game_id for c in state.cards]
    out = []
    for _ in range(n):
        x = rng.random()
        if x < 0.8:
            out.append({"user_id": rng.choice(users), "k": 10})
        elif x < 0.9:
            out.append({"user_id": 0, "k": 10, "liked_game_ids": rng.sample(games, 3)})
        else:
            out.append({"user_id": 10**12 + rng.randrange(1000), "k": 10})
    return out


def bench_in_process(state: ServingState, n: int = 20_000) -> None:
    """Without the answer cache (the state is loaded with cache_size=0): every request is computed."""
    reqs = [msgspec.convert(b, PredictRequest) for b in request_mix(state, n)]
    for r in reqs[:500]:
        predict_json(state, r)
    times = np.empty(n)
    sources = []
    clock = time.perf_counter
    for i, r in enumerate(reqs):
        t = clock()
        _, source = predict_json(state, r)
        times[i] = clock() - t
        sources.append(source)
    print(
        f"in-process predict, computed (answer cache off): {n} requests, {state.model.n_items} games, "
        f"{state.user_ids.size} users, {state.model.similarity.nnz} neighbour pairs: p50 {ms(pct(times, 50))}  "
        f"p99 {ms(pct(times, 99))}  max {ms(times.max())}  (target p99 <= 1 ms)"
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
def server(home: Path, workers: int, cache: bool = True) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home), "PYTHONPATH": str(ROOT)}
    if not cache:
        env["GAMEREC_PREDICT_CACHE"] = "0"
    env.pop("GAMEREC_ADMIN_TOKEN", None)
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- closed-loop throughput ----------------------------------------------------------------------------------------

WRK_PREDICT = """
local users = {%s}
local headers = {["Content-Type"] = "application/json"}
request = function()
  local u = users[math.random(#users)]
  return wrk.format("POST", "/predict", headers, '{"user_id":' .. u .. ',"k":10}')
end
"""


def wrk_throughput(base: str, path: str, duration: float, users: list[int], tmp: Path) -> tuple[float, str]:
    args = ["wrk", "-t2", "-c32", f"-d{int(duration)}s", "--latency"]
    if path == "/predict":
        script = tmp / "predict.lua"
        script.write_text(WRK_PREDICT % ",".join(map(str, users[:1000])))
        args += ["-s", str(script)]
    out = subprocess.run(
        [*args, base + (path if path != "/predict" else "/")], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)$", out, re.M)
    note = f"p99 {p99.group(1) if p99 else '?'}" + (f", NON-2XX {non2xx.group(1)}" if non2xx else "")
    return rps, note


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


def python_throughput(base: str, path: str, duration: float, bodies: list[bytes], conns: int = 16) -> tuple[float, str]:
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
    return done / duration, f"python client, {conns} connections" + (f", NON-200 {errors}" if errors else "")


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
    lat, errors = asyncio.run(run())
    return {"n": n, "p50": pct(lat, 50), "p99": pct(lat, 99), "max": float(np.nanmax(lat)), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP measurement")
    parser.add_argument("--rate", type=float, default=500.0, help="offered load for the latency run (req/s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator even with wrk")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gamerec-bench-"))
    try:
        home, what = resolve_home(tmp)
        print(f"model: {what}")
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
        state = load_state(
            ModelRegistry(StorageSettings.from_env({"GAMEREC_HOME": str(home)}).artifact_store(), MODEL_NAME),
            StorageSettings.from_env({"GAMEREC_HOME": str(home)}).table_store(),
        )
        bench_in_process(state)

        bodies = [msgspec.json.encode(b) for b in request_mix(state, 2000, seed=1)]
        known_users = state.user_ids.tolist()
        use_wrk = shutil.which("wrk") is not None and not args.python_client
        print(
            f"HTTP load generator: {'wrk (-t2 -c32), random known user per request' if use_wrk else 'Python asyncio'}"
            f"; {args.duration:.0f}s per run"
        )
        for workers in args.workers:
            for cache in (True, False):
                label = f"[workers={workers}, answer cache {'on' if cache else 'off'}]"
                with server(home, workers, cache) as base:
                    if use_wrk:
                        health, hnote = wrk_throughput(base, "/healthz", args.duration, known_users, tmp)
                        pred, pnote = wrk_throughput(base, "/predict", args.duration, known_users, tmp)
                    else:
                        health, hnote = python_throughput(base, "/healthz", args.duration, bodies)
                        pred, pnote = python_throughput(base, "/predict", args.duration, bodies)
                    print(
                        f"{label} /healthz {health:,.0f} req/s ({hnote}); /predict {pred:,.0f} req/s ({pnote}); "
                        f"predict/healthz = {pred / health:.0%} (target >= 70%)"
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
