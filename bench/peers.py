"""The servers under test ("peers") and the fake upstream: how to install, start and ask each.

- ``direct``: the load generator talks to the fake upstream itself (the floor);
- ``fastapi``: FastAPI + sse-starlette + the openai SDK (``bench/peers/fastapi_relay.py``), in
  its own virtualenv ``bench/.venv-peers``;
- ``koa``: the tutorial's Koa relay (``bench/peers/koa_relay.mjs``), installed with ``npm ci``;
- ``ssechat``: ``ssechat serve`` through its full path: a conversation, a run, its log, SQLite;
- ``ssechat-pg`` / ``ssechat-pg2``: the same full path on PostgreSQL + Redis (run logs in Redis
  Streams), in one process / in two (``--workers 2``); PostgreSQL and Redis come from
  ``bench.services`` and their CPU is watched next to the server's;
- ``ssechat-chat``: ssechat's stateless ``/api/chat`` relay (no run, no store), for comparison;
- ``rawpy``: the barest Python relay (``bench/peers/raw_relay.py``: uvloop, httptools, no task
  or timer per token): what a Python server can reach on this machine.

Each server runs pinned on the server CPU and is started afresh for every measurement, so
memory and CPU baselines are clean. This module never edits anything outside ``bench/``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson

from bench.client import Kind, fetch, request
from bench.procs import CpuPlan, Procs, ProcStat, ProcTree, free_port, wait_http_ok
from bench.services import Services, Shared

__all__ = ["PEERS", "Peer", "Upstream", "install_peers", "start_peer", "start_upstream"]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_DIR = BENCH / "peers"
PEERS_VENV = BENCH / ".venv-peers"
PROJECT_BIN = Path(sys.executable).parent

PEERS = (
    "direct",
    "fastapi",
    "koa",
    "ssechat",
    "ssechat-pg",
    "ssechat-pg2",
    "ssechat-chat",
    "rawpy",
)
RUN_PEERS = ("ssechat", "ssechat-pg", "ssechat-pg2")
"""The peers that take ssechat's full path (a conversation, a run, its log): the run stream."""
SHARED_PEERS = {"ssechat-pg": 1, "ssechat-pg2": 2}
"""The peers on PostgreSQL + Redis, and their worker processes."""
LABELS = {
    "direct": "direct to the fake upstream (floor)",
    "fastapi": "FastAPI + sse-starlette + openai SDK",
    "koa": "Koa + PassThrough + openai (Node)",
    "ssechat": "ssechat, full path (run, log, SQLite)",
    "ssechat-pg": "ssechat, full path on PostgreSQL + Redis, 1 process",
    "ssechat-pg2": "ssechat, full path on PostgreSQL + Redis, 2 processes",
    "ssechat-chat": "ssechat /api/chat (stateless relay)",
    "rawpy": "bare uvloop + httptools relay (a Python floor)",
}


@dataclass
class Upstream:
    port: int
    proc: subprocess.Popen[bytes]
    stat: ProcStat

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@dataclass
class Peer:
    """One server under test, started; ``stat`` watches the server process (None: direct), with
    its worker processes when it has some; ``redis`` and ``postgres`` watch the servers it uses
    (None: the embedded peers)."""

    name: str
    kind: Kind
    port: int
    proc: subprocess.Popen[bytes] | None = None
    stat: ProcStat | None = None
    sep: bytes = b"\n\n"
    conversations: list[str] = field(default_factory=list)
    auth: dict[str, str] = field(default_factory=dict)
    """ssechat: the API key every request carries (accounts are on, as by default)."""
    redis: ProcStat | None = None
    postgres: ProcTree | None = None
    database_url: str = ""
    """ssechat: its database (a ``sqlite:///`` file or PostgreSQL), for scenarios that fill it."""

    def cpu_parts(self) -> tuple[float, float, float]:
        """CPU seconds so far of (the server, Redis, PostgreSQL); NaN for what is not there."""
        nan = float("nan")
        return (
            self.stat.cpu_seconds() if self.stat else nan,
            self.redis.cpu_seconds() if self.redis else nan,
            self.postgres.cpu_seconds() if self.postgres else nan,
        )

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def stream_request(self, model: str, index: int) -> bytes:
        """The request that opens stream number ``index`` answered by ``model``."""
        port = self.port
        if self.name == "direct":
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "Tell me about streaming."}],
                "stream": True,
            }
            return request("POST", "/v1/chat/completions", port, body=body, headers=_SSE)
        if self.name in RUN_PEERS:
            conversation = self.conversations[index % len(self.conversations)]
            # parent_id null: a new root branch, so one conversation may hold several live runs
            body = {"content": "Tell me about streaming.", "model": model, "parent_id": None}
            path = f"/api/conversations/{conversation}/messages"
            return request("POST", path, port, body=body, headers={**_SSE, **self.auth})
        path = "/api/chat" if self.name == "ssechat-chat" else "/chat"
        query = f"?message={quote('Tell me about streaming.')}&model={quote(model)}"
        return request("GET", path + query, port, headers={**_SSE, **self.auth})

    def resume_request(self, run_id: str, last_id: int) -> bytes:
        headers = {**_SSE, "Last-Event-ID": str(last_id), **self.auth}
        return request("GET", f"/api/runs/{run_id}/events", self.port, headers=headers)

    async def prepare(self, streams: int, model: str, per_conversation: int = 1) -> None:
        """ssechat: create the conversations the streams will post to (not timed)."""
        if self.name not in RUN_PEERS:
            return
        count = max(1, -(-streams // per_conversation))
        semaphore = asyncio.Semaphore(32)

        async def create() -> str:
            async with semaphore:
                status, body = await fetch(
                    self.port, "POST", "/api/conversations", {"model": model}, headers=self.auth
                )
            if status != 201:
                raise RuntimeError(f"creating a conversation: HTTP {status} {body[:200]!r}")
            return str(orjson.loads(body)["id"])

        self.conversations = list(await asyncio.gather(*(create() for _ in range(count))))


_SSE = {"Accept": "text/event-stream"}
BENCH_ADMIN = {"email": "bench@example.com", "password": "benchmark-password"}


def make_api_key(port: int) -> str:
    """Sign in as the bench's admin and make an API key, as a user would (not timed)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        signed_in = client.post("/api/auth/login", json=BENCH_ADMIN)
        if signed_in.status_code != 200:
            raise RuntimeError(f"signing in to ssechat: HTTP {signed_in.status_code}")
        created = client.post("/api/keys", json={"name": "bench"})
        if created.status_code != 201:
            raise RuntimeError(f"making an API key: HTTP {created.status_code}")
        return str(created.json()["key"])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSECHAT_", "OPENAI_"))}
    env.update(extra)
    return env


def install_peers(names: tuple[str, ...]) -> None:
    """Create ``bench/.venv-peers`` and run ``npm ci`` when needed (idempotent, bounded)."""
    if "fastapi" in names:
        stamp = PEERS_VENV / ".installed"
        requirements = PEERS_DIR / "requirements.txt"
        if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
            _run([sys.executable, "-m", "venv", str(PEERS_VENV)])
            pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            _run([*pip, "--disable-pip-version-check", "-r", str(requirements)])
            stamp.touch()
    if "koa" in names:
        stamp = PEERS_DIR / "node_modules" / ".package-lock.json"
        lock = PEERS_DIR / "package-lock.json"
        if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
            _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR)


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def start_upstream(procs: Procs, plan: CpuPlan, *, uvloop: bool = True) -> Upstream:
    """The fake upstream, on the load generator's side of the machine."""
    port = free_port()
    if uvloop:
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "ssechat.fake_upstream", "--host", "127.0.0.1"]
        argv += ["--port", str(port)]
    proc = procs.spawn("upstream", argv, cpus=plan.upstream, env=_child_env({}), cwd=ROOT)
    wait_http_ok(port, "/v1/models", proc)
    return Upstream(port, proc, ProcStat(proc.pid))


@contextmanager
def start_peer(
    name: str,
    procs: Procs,
    plan: CpuPlan,
    upstream: Upstream,
    work: Path,
    *,
    ssechat_env: dict[str, str] | None = None,
    services: Services | None = None,
) -> Iterator[Peer]:
    """Start one server under test (nothing for ``direct``); kill it when the block ends. The
    peers on PostgreSQL + Redis get a fresh database and an empty Redis from ``services``."""
    if name == "direct":
        yield Peer(name, "openai", upstream.port, stat=None)
        return
    if name in SHARED_PEERS:
        if services is None:
            raise ValueError(f"{name} needs PostgreSQL and Redis (bench.services)")
        with (
            services.fresh() as shared,
            _start(name, procs, plan, upstream, work, ssechat_env, shared) as peer,
        ):
            yield peer
        return
    with _start(name, procs, plan, upstream, work, ssechat_env, None) as peer:
        yield peer


@contextmanager
def _start(
    name: str,
    procs: Procs,
    plan: CpuPlan,
    upstream: Upstream,
    work: Path,
    ssechat_env: dict[str, str] | None,
    shared: Shared | None,
) -> Iterator[Peer]:
    port = free_port()
    env = {"OPENAI_BASE_URL": upstream.base_url, "OPENAI_API_KEY": "sk-bench"}
    database_url = ""
    if name == "fastapi":
        argv = [str(PEERS_VENV / "bin" / "python"), str(PEERS_DIR / "fastapi_relay.py")]
        health, kind, sep = "/health", "tutorial", b"\r\n\r\n"
    elif name == "koa":
        argv = ["node", str(PEERS_DIR / "koa_relay.mjs")]
        health, kind, sep = "/health", "tutorial", b"\n\n"
    elif name == "rawpy":
        argv = [sys.executable, str(PEERS_DIR / "raw_relay.py")]
        health, kind, sep = "/health", "tutorial", b"\n\n"
    elif name in ("ssechat", "ssechat-chat", *SHARED_PEERS):
        argv = [str(PROJECT_BIN / "ssechat"), "serve"]
        if shared is None:
            work.mkdir(parents=True, exist_ok=True)
            database = work / f"ssechat-{port}.db"
            argv += ["--db", str(database)]
            database_url = f"sqlite:///{database}"
        else:
            database_url = shared.database_url
            argv += ["--workers", str(SHARED_PEERS[name])]
            env["SSECHAT_DATABASE_URL"] = shared.database_url
            env["SSECHAT_REDIS_URL"] = shared.redis_url
        env.update(
            {
                "SSECHAT_LOG_LEVEL": "warning",
                # Accounts on, as by default: the load signs every request with an API key.
                "SSECHAT_ADMIN_EMAIL": BENCH_ADMIN["email"],
                "SSECHAT_ADMIN_PASSWORD": BENCH_ADMIN["password"],
                # One user holds every stream of a scenario; the per-user cap would refuse them.
                "SSECHAT_MAX_LIVE_RUNS_PER_USER": "0",
                **(ssechat_env or {}),
            }
        )
        health, sep = "/api/health", b"\n\n"
        kind = "run" if name in RUN_PEERS else "tutorial"
    else:
        raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    proc = procs.spawn(name, [*argv, "--port", str(port)], cpus=plan.server, env=_child_env(env))
    try:
        wait_http_ok(port, health, proc)
        # With workers, the server is uvicorn's parent and its children: all of them count.
        stat = ProcTree(proc.pid) if SHARED_PEERS.get(name, 1) > 1 else ProcStat(proc.pid)
        peer = Peer(name, kind, port, proc, stat, sep)  # type: ignore[arg-type]
        peer.database_url = database_url
        if shared is not None:
            peer.redis, peer.postgres = shared.redis, shared.postgres
        if name.startswith("ssechat"):
            peer.auth = {"Authorization": f"Bearer {make_api_key(port)}"}
        yield peer
    finally:
        # Killed, not stopped: a graceful shutdown would only save half-streamed answers. With
        # workers, uvicorn's children outlive a killed parent: each is killed by its pid too.
        if name in SHARED_PEERS:
            procs.kill_tree(proc)
        else:
            procs.kill(proc)
