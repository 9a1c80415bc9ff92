"""segkit serve: requests/s and p50/p99 latency of POST /v1/blur at 640x480 under 1, 4 and 16 clients, and the
live WebSocket's fps and latency, against a real server process on 127.0.0.1.

The reference is the same work done in this process (decode the JPEG, segment, blur, encode), measured interleaved
with the one-client HTTP requests, so the HTTP overhead is a ratio of two medians taken under the same load.
Start-up (process start to the first 200) is reported separately from throughput.

Targets (PASS/MISS; timing never fails the run, errors do): HTTP overhead at one client <= 25 % of the in-process
time (p50 ratio <= 1.25); no status but 200 while every client fits in workers + queue; live p50 latency <= 150 ms
with frames sent at 30 fps.

    .venv/bin/python benchmarks/bench_serve.py [--model selfie_segmenter] [--workers 1] [--threads N]
        [--requests 60] [--live-seconds 10] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO.parent / "shared" / "testdata" / "astronaut.png"
CONCURRENCY = (1, 4, 16)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--model", default="selfie_segmenter", help="served model (default: selfie_segmenter)")
    p.add_argument("--workers", type=int, default=1, help="segkit serve --workers (default: 1)")
    p.add_argument("--threads", type=int, default=None, help="segkit serve --threads (default: its own)")
    p.add_argument("--requests", type=int, default=60, help="timed requests per concurrency level (default: 60)")
    p.add_argument("--live-seconds", type=float, default=10.0, help="live stream duration (default: 10)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 8 requests per level, 2 s of live stream")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.live_seconds = 8, 2.0
    return args


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


def photo_jpeg() -> bytes:
    """The benchmark input: a real portrait at 640x480 as JPEG."""
    with PILImage.open(PHOTO) as im:
        buffer = io.BytesIO()
        im.convert("RGB").resize((640, 480), PILImage.Resampling.BILINEAR).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


class Server:
    """``python -m segkit.serve`` on a free port."""

    def __init__(self, args: argparse.Namespace) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "segkit.serve", "--port", str(self.port), "--models", args.model]
        command += ["--workers", str(args.workers), "--queue", str(max(CONCURRENCY)), "--timeout", "120"]
        if args.threads:
            command += ["--threads", str(args.threads)]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the server process runs
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, body: bytes) -> float:
        """Seconds from process start to the first 200 from /v1/blur."""
        import httpx

        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"segkit serve exited: {self.log.read().decode(errors='replace')}")
            try:
                if httpx.post(f"{self.url}/v1/blur", content=body, timeout=30).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def in_process(model: str, threads: int | None) -> Any:
    """The reference: the server's work for one request, done in this process."""
    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, effects, models

    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(models.resolve(model))),
        output_category_mask=True,
        num_threads=threads,
    )
    segmenter = ImageSegmenter.create_from_options(options)

    def run(body: bytes) -> bytes:
        with PILImage.open(io.BytesIO(body)) as im:
            rgb = np.asarray(im.convert("RGB"))
        result = segmenter.segment(rgb)
        out = effects.blur_background(rgb, effects.subject_mask(result, segmenter=segmenter), 15.0)
        buffer = io.BytesIO()
        PILImage.fromarray(out).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    return run


def http_level(server: Server, body: bytes, clients: int, requests: int) -> dict[str, Any]:
    """``requests`` POSTs from ``clients`` concurrent clients: throughput, latency of the 200s, status counts."""
    import httpx

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def client(_: int) -> None:
        with httpx.Client(timeout=120) as http:
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = http.post(f"{server.url}/v1/blur", content=body, headers={"content-type": "image/jpeg"})
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        latencies.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": per_client * clients,
        "rps": statuses[200] / wall,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99),
        "statuses": dict(statuses),
    }


def overhead(server: Server, body: bytes, reference: Any, rounds: int) -> dict[str, float]:
    """One-client HTTP latency and the in-process reference, interleaved pair by pair."""
    import httpx

    http_ms, local_ms = [], []
    with httpx.Client(timeout=120) as http:
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = http.post(f"{server.url}/v1/blur?format=jpeg", content=body)
            http_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"/v1/blur answered {r.status_code}: {r.text}")
            t0 = time.perf_counter()
            reference(body)
            local_ms.append((time.perf_counter() - t0) * 1000)
    http_p50, local_p50 = statistics.median(http_ms), statistics.median(local_ms)
    return {"http_p50_ms": http_p50, "in_process_p50_ms": local_p50, "ratio": http_p50 / local_p50}


def live(server: Server, body: bytes, seconds: float, fps: float = 30.0) -> dict[str, Any]:
    """A camera-like client: frames at ``fps``, at most two in flight; delivered fps, latency and drops."""
    from websockets.sync.client import connect

    latencies: list[float] = []
    sent = 0
    last: dict[str, Any] = {}
    with connect(f"ws://127.0.0.1:{server.port}/v1/live?effect=blur&quality=80", max_size=None) as ws:
        json.loads(ws.recv(timeout=30))
        pending: set[float] = set()
        start = time.perf_counter()
        next_frame = start
        while time.perf_counter() - start < seconds:
            now = time.perf_counter()
            if now >= next_frame and len(pending) < 2:
                ts = now * 1000
                header = json.dumps({"timestamp": ts}).encode()
                ws.send(struct.pack("<I", len(header)) + header + body)
                pending.add(ts)
                sent += 1
                next_frame += 1 / fps
            try:
                message = ws.recv(timeout=max(0.001, next_frame - time.perf_counter()))
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                (length,) = struct.unpack_from("<I", message)
                last = json.loads(message[4 : 4 + length])
                latencies.append(time.perf_counter() * 1000 - last["timestamp"])
                pending = {t for t in pending if t > last["timestamp"]}
        elapsed = time.perf_counter() - start
    return {
        "sent": sent,
        "delivered": len(latencies),
        "fps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99),
        "server_dropped": last.get("dropped", 0),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SEGKIT_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    body = photo_jpeg()
    server = Server(args)
    try:
        startup = server.wait_ready(body)
        reference = in_process(args.model, args.threads)
        for _ in range(3):  # warm-up of both sides
            overhead(server, body, reference, 1)
        over = overhead(server, body, reference, max(5, args.requests // 2))
        levels = [http_level(server, body, c, args.requests) for c in CONCURRENCY]
        stream = live(server, body, args.live_seconds)
    finally:
        server.stop()
    print(f"segkit serve benchmark: model {args.model}, --workers {args.workers}, 640x480 JPEG, POST /v1/blur")
    print(f"start-up (process start to first 200): {startup:.2f} s")
    print(
        f"one client: HTTP p50 {over['http_p50_ms']:.1f} ms vs in-process {over['in_process_p50_ms']:.1f} ms "
        f"(ratio {over['ratio']:.2f})"
    )
    print(f"{'clients':>7}  {'req/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}  statuses")
    for level in levels:
        print(
            f"{level['clients']:>7}  {level['rps']:>7.1f}  {level['p50_ms']:>7.1f}  {level['p99_ms']:>7.1f}  "
            f"{level['statuses']}"
        )
    print(
        f"live /v1/live blur, frames sent at 30 fps, <= 2 in flight: {stream['fps']:.1f} fps delivered, "
        f"latency p50 {stream['p50_ms']:.0f} ms p99 {stream['p99_ms']:.0f} ms, "
        f"{stream['delivered']}/{stream['sent']} frames back, {stream['server_dropped']} dropped by the server"
    )
    only_200 = all(set(level["statuses"]) == {200} for level in levels)
    results = {
        "http overhead at 1 client <= 1.25x in-process": over["ratio"] <= 1.25,
        "only 200s within workers + queue": only_200,
        "live p50 latency <= 150 ms": stream["p50_ms"] <= 150,
    }
    for name, ok in results.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    if args.json:
        report = {"startup_s": startup, "overhead": over, "levels": levels, "live": stream, "targets": results}
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if only_200 else 1


if __name__ == "__main__":
    sys.exit(main())
