"""The processes a benchmark starts: spawn them pinned, watch them through /proc, stop them by pid.

Every process goes through ``Procs.spawn`` and is stopped by ``Procs.stop_all`` (SIGTERM, then
SIGKILL after a grace period), which ``bench.run`` calls in a ``finally`` and at interpreter exit:
a benchmark that is interrupted leaves nothing behind. Nothing here ever signals a process it did
not start, or reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
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
    "Procs",
    "cpu_busy",
    "free_port",
    "loadavg",
    "machine_info",
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
