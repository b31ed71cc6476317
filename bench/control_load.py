"""Issue 15's load: many caches, a busy control plane, and one memcache client timing it.

Shared by ``loop_stall.py`` (trees side by side) and ``scale.py`` (100 / 1 000 / 10 000
caches): the backend command line, caches created through the admin API, the getter that
times memcache ``get`` from when each was due, and the HTTP load of issue 15 item 1 (a
``/metrics`` scrape every 5 s, the Caches page's list poll every second, one dashboard
polling one cache's stats every second), run in a process of its own.
"""

from __future__ import annotations

import multiprocessing
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from processes import BenchError

HOST = "127.0.0.1"
GET_EVERY_S = 0.002
METRICS_EVERY_S = 5.0
LIST_EVERY_S = 1.0
STATS_EVERY_S = 1.0
CREATE_WORKERS = 4
# What the Caches page asks for: one page of 50 (issue 15 item 3). A backend without
# paging ignores the parameter and answers the whole list, which is what it costs there.
LIST_PATH = "/api/v1/admin/caches?limit=50"


def backend_command(
    data_dir: Path,
    api_port: int,
    endpoint_port: int,
    token: str,
    extra: list[str] | None = None,
    launcher: list[str] | None = None,
) -> list[str]:
    """``cachier-backend`` on loopback; ``launcher`` replaces ``python -m backend.cli``."""
    return [
        *(launcher or [sys.executable, "-m", "backend.cli"]),
        "--data-dir",
        str(data_dir),
        "--host",
        HOST,
        "--api-port",
        str(api_port),
        "--endpoint-port",
        str(endpoint_port),
        f"--admin-token={token}",  # one argument: a random token may start with "-"
        *(extra or []),
    ]


def summary(values_s: list[float]) -> dict[str, float]:
    """n, p50, p99, max in milliseconds."""
    if not values_s:
        return {"n": 0}
    ordered = sorted(values_s)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": round(ordered[-1] * 1000, 3),
    }


def list_rows(answer: Any) -> tuple[int, int | None]:
    """(rows in this answer, total the server reports) for both shapes of the admin list.

    Before paging the answer is a JSON list of every cache; a paging server answers an
    object ``{"items": [...], "next_cursor": ..., "total": N}``.
    """
    if isinstance(answer, list):
        return len(answer), len(answer)
    if isinstance(answer, dict) and isinstance(answer.get("items"), list):
        total = answer.get("total")
        return len(answer["items"]), total if isinstance(total, int) else None
    raise BenchError(f"the admin list answered neither a list nor a page: {str(answer)[:200]}")


# -- the memcache side: one connection, one get every 2 ms --------------------------------
class Getter:
    def __init__(self, servers: str, username: str, password: str) -> None:
        host, _, port = servers.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        secret = password.encode()
        self.ask(
            b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret), b"STORED\r\n"
        )
        self.ask(b"set k 0 0 5\r\nvalue\r\n", b"STORED\r\n")

    def ask(self, request: bytes, terminator: bytes) -> None:
        self.sock.sendall(request)
        while terminator not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("the memcache connection closed")
            self.pending += chunk
        self.pending = self.pending[self.pending.index(terminator) + len(terminator) :]

    def run(self, seconds: float) -> tuple[list[float], list[float]]:
        """A get due every 2 ms; returns (latency from when it was due, service time).

        The first counts a stall for every get that should have been sent during it, as a
        client with steady traffic sees it (after a stall the getter catches up back to
        back); the service time alone would count one slow get per stall ("coordinated
        omission"): a 700 ms stall every 5 s then hardly moves the p99.
        """
        due_times, service = [], []
        due = time.perf_counter()
        deadline = due + seconds
        while due < deadline:
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            sent = time.perf_counter()
            self.ask(b"get k\r\n", b"END\r\n")
            done = time.perf_counter()
            due_times.append(done - due)
            service.append(done - sent)
            due += GET_EVERY_S
        return due_times, service

    def close(self) -> None:
        self.sock.close()


# -- the HTTP side: another process, so parsing never runs beside the getter --------------
def http_load(
    api: str, token: str, dashboard: str, seconds: float, out: multiprocessing.Queue
) -> None:
    """Issue 15 item 1's control-plane load for ``seconds``; puts the answer times on ``out``.

    Each poller is re-armed after the previous answer (a slow answer delays the next
    poll, as in the dashboard); bodies are read, never parsed.
    """
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[float]] = {"metrics": [], "list": [], "stats": []}
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def every(name: str, url: str, interval: float, auth: bool) -> None:
        with httpx.Client(headers=headers if auth else None, timeout=60) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = client.get(url)
                response.read()
                results[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(f"{url}: HTTP {response.status_code}")
                    return
                time.sleep(max(0.0, min(interval, stop_at - time.monotonic())))

    threads = [
        threading.Thread(target=every, args=("metrics", f"{api}/metrics", METRICS_EVERY_S, False)),
        threading.Thread(target=every, args=("list", f"{api}{LIST_PATH}", LIST_EVERY_S, True)),
        threading.Thread(
            target=every, args=("stats", f"{dashboard}/api/stats", STATS_EVERY_S, False)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put({"timings": results, "errors": errors})


def under_load(
    getter: Getter, api: str, token: str, dashboard: str, seconds: float
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """The getter for ``seconds`` while ``http_load`` runs in another process.

    Returns (get latency from due, get service time, HTTP answer times by poller).
    """
    queue: multiprocessing.Queue = multiprocessing.Queue()
    load = multiprocessing.Process(target=http_load, args=(api, token, dashboard, seconds, queue))
    load.start()
    try:
        loaded, service = getter.run(seconds)
        answer = queue.get(timeout=seconds + 120)
        load.join(30)
    finally:
        if load.is_alive():
            load.terminate()
            load.join(5)
    if answer["errors"]:
        raise BenchError("; ".join(answer["errors"]))
    return loaded, service, answer["timings"]


# -- caches --------------------------------------------------------------------------------
def create_caches(
    api: str, token: str, count: int, workers: int = CREATE_WORKERS, start: int = 0
) -> tuple[dict, float]:
    """``count`` caches on the free plan, ``workers`` at a time; returns the first, seconds.

    Through the admin API, the only way in that builds everything a cache has (control
    plane row, credentials, data-plane engine, dashboard URL). Names are ``bench-NNNNN``
    from ``start`` on, so batches can follow one another.
    """
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    local = threading_local_clients(api, headers)

    def create(i: int) -> dict:
        response = local().post(
            "/api/v1/admin/caches", json={"name": f"bench-{i:05d}", "plan": "free"}
        )
        if response.status_code != 201:
            raise BenchError(f"creating cache {i}: HTTP {response.status_code} {response.text}")
        return response.json() if i == start else {}

    with ThreadPoolExecutor(workers) as pool:
        first = list(pool.map(create, range(start, start + count)))[0]
    return first, time.perf_counter() - started


def threading_local_clients(api: str, headers: dict[str, str]) -> Callable[[], httpx.Client]:
    """One keep-alive client per worker thread (httpx clients are not shared here)."""
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=api, headers=headers, timeout=60)
        return local.client

    return client
