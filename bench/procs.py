"""The processes a benchmark starts: spawn them pinned, watch them through /proc, stop them by pid.

Every process goes through ``Procs.spawn`` and is stopped by ``Procs.stop_all`` (SIGTERM, then
SIGKILL after a grace period), which ``bench.run`` calls in a ``finally`` and at interpreter exit:
a benchmark that is interrupted leaves nothing behind. Nothing here ever signals a process it did
not start, or reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CpuPlan",
    "ProcStat",
    "ProcTree",
    "Procs",
    "cpu_busy",
    "free_port",
    "loadavg",
    "machine_info",
    "pin_tree",
    "raise_nofile_limit",
    "wait_http_ok",
]

HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPUs each party runs on; empty sets mean "not pinned"."""

    server: frozenset[int]
    upstream: frozenset[int]
    loadgen: frozenset[int]
    note: str

    @classmethod
    def for_this_machine(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 3 and shutil.which("taskset"):
            return cls(
                frozenset({cpus[1]}),
                frozenset({cpus[2]}),
                frozenset({cpus[0]}),
                f"server alone on CPU {cpus[1]}, upstream on CPU {cpus[2]}, "
                f"load generator on CPU {cpus[0]}",
            )
        if len(cpus) == 2 and shutil.which("taskset"):
            return cls(
                frozenset({cpus[1]}),
                frozenset({cpus[0]}),
                frozenset({cpus[0]}),
                f"2 CPUs: server alone on CPU {cpus[1]}; upstream and load generator share "
                f"CPU {cpus[0]}",
            )
        return cls(frozenset(), frozenset(), frozenset(), "not pinned (one CPU, or no taskset)")

    def pin_self(self) -> None:
        if self.loadgen:
            os.sched_setaffinity(0, self.loadgen)


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_busy(cpus: frozenset[int]) -> float:
    """Seconds the given CPUs have been busy (anything but idle and iowait), from /proc/stat."""
    if not cpus:
        return float("nan")
    total = 0
    for line in _read("/proc/stat").splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(x) for x in rest.split()]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            total += sum(ticks[:8]) - ticks[3] - ticks[4]
    return total / _CLK_TCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ProcStat:
    """CPU time and memory of one process (all its threads), read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        """User + system time of the whole process, dead threads included."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) seconds of the whole process."""
        try:
            raw = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan"), float("nan")
        fields = raw[raw.rindex(")") + 2 :].split()
        return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK

    def rss_bytes(self) -> int:
        try:
            return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * _PAGE
        except OSError:
            return 0

    def open_fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0


class ProcTree(ProcStat):
    """CPU time and memory of a process and all its descendants: a server with worker processes
    (``ssechat serve --workers 2``: uvicorn's parent and its children) or PostgreSQL (the
    postmaster forks a backend per connection).

    CPU counts each process's own time plus the time of its children that have ended and been
    waited for (``cutime``/``cstime``), so a backend that exits keeps counting. The
    descendants are found by scanning ``/proc`` for their parent pid (this kernel has no
    ``/proc/PID/task/TID/children``), at most once a second: a process born since is counted
    from the next scan. Memory: each process's private resident pages, plus the largest shared
    part once (PostgreSQL's shared buffers are mapped by every backend; summing RSS would
    count them once per backend)."""

    RESCAN = 1.0

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self._pids: list[int] = [pid]
        self._scanned = -math.inf

    def pids(self) -> list[int]:
        now = time.monotonic()
        if now - self._scanned >= self.RESCAN:
            self._scanned = now
            self._pids = [self.pid, *_descendants(self.pid)]
        return self._pids

    def cpu_split(self) -> tuple[float, float]:
        pids = self.pids()
        user = system = 0
        for pid in pids:  # the root first: a child reaped meanwhile is missed, not counted twice
            fields = _stat_fields(pid)
            if fields is None:
                if pid == self.pid:
                    return float("nan"), float("nan")
                continue
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
        return user / _CLK_TCK, system / _CLK_TCK

    def rss_bytes(self) -> int:
        private = shared = 0
        for pid in self.pids():
            try:
                pages = Path(f"/proc/{pid}/statm").read_text().split()
            except OSError:
                continue
            resident, mapped = int(pages[1]), int(pages[2])
            private += resident - mapped
            shared = max(shared, mapped)
        return (private + shared) * _PAGE

    def open_fds(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += len(os.listdir(f"/proc/{pid}/fd"))
        return total


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"  # a zombie is gone but for its parent's wait


def _descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, from one scan of ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pin_tree(pid: int, cpus: frozenset[int]) -> None:
    """Pin a process started elsewhere, and its descendants (new ones inherit it), to ``cpus``."""
    if not cpus:
        return
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(each, cpus)


class Procs:
    """Every process this benchmark started, to stop them all (by pid) whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._live: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        atexit.register(self.stop_all)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: frozenset[int] = frozenset(),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` (through ``taskset`` when pinned, which execs: same pid)."""
        command = list(argv)
        if cpus:
            command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                command,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._live[proc.pid] = (name, proc)
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Also stop ``proc`` (started elsewhere: PostgreSQL, Redis) if the benchmark is cut."""
        self._live[proc.pid] = (name, proc)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; return the exit code."""
        self._live.pop(proc.pid, None)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL at once: for servers whose graceful shutdown would only cost time."""
        self._live.pop(proc.pid, None)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)

    def kill_tree(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``proc`` and every descendant (a server's worker processes), by pid."""
        descendants = _descendants(proc.pid)
        self.kill(proc)  # the parent first, so that it cannot start a worker again
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in descendants):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)

    def stop_all(self) -> None:
        for _name, proc in list(self._live.values()):
            self.stop(proc, grace=5.0)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http_ok(
    port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 30.0
) -> None:
    """Poll ``GET path`` on 127.0.0.1:port until it answers 200 (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1.0) as sock:
            sock.sendall(request)
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered 200 on {HOST}:{port}{path} within {timeout:g} s")


def loadavg() -> list[str]:
    return _read("/proc/loadavg").split()[:3]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else ""


def machine_info(plan: CpuPlan) -> dict[str, Any]:
    """What the results were measured on: CPU, memory, kernel, runtimes, load, limits."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if "MemTotal" in line
        ),
        0,
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "node": _command_version(["node", "--version"]),
        "loadavg_at_start": loadavg(),
        "nofile_limit": {"soft": soft, "hard": hard},
        "pinning": plan.note,
    }


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()
