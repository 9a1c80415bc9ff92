"""48 concurrent clients against one worker per model: only 200s and 503s, healthy afterwards, memory flat."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serve.conftest import ServerProcess, encode

pytestmark = pytest.mark.slow

CLIENTS = 48
REQUESTS_PER_CLIENT = 3


def _round(server: ServerProcess, body: bytes) -> Counter[int]:
    """Every client sends its requests back to back; returns the status counts."""
    import httpx

    def client(_: int) -> list[tuple[int, str | None, str]]:
        out = []
        with httpx.Client(timeout=120) as http:
            for _ in range(REQUESTS_PER_CLIENT):
                r = http.post(f"{server.url}/v1/blur", content=body, headers={"content-type": "image/jpeg"})
                out.append((r.status_code, r.headers.get("retry-after"), r.headers["content-type"]))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [item for batch in pool.map(client, range(CLIENTS)) for item in batch]
    for status, retry_after, content_type in results:
        assert status in (200, 503), f"got {status}"
        if status == 503:
            assert retry_after is not None and int(retry_after) >= 1
            assert content_type == "application/json"
        else:
            assert content_type == "image/jpeg"
    return Counter(status for status, _, _ in results)


def test_saturation_gives_503_never_errors_and_memory_stays_flat(server, photo_640):
    import httpx

    body = encode(photo_640, "JPEG", quality=90)
    first = _round(server, body)  # warms every allocation the steady state needs
    assert first[200] >= 1 and first[503] >= 1, first
    warm = server.rss_mb()
    totals = Counter(first)
    for _ in range(3):
        totals += _round(server, body)
    grown = server.rss_mb() - warm
    assert grown < 40, f"RSS grew {grown:.0f} MB over three more rounds of {CLIENTS * REQUESTS_PER_CLIENT} requests"
    assert server.rss_mb() < 800
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok" and all(n == 0 for n in health["in_flight"].values()), health
    after = httpx.post(f"{server.url}/v1/blur", content=body, timeout=60)
    assert after.status_code == 200, "the server did not recover after the load"
    assert set(totals) <= {200, 503}
