"""The processes a run starts, and what /proc says about them.

Every process here is started by the bench itself, on loopback, and is
stopped by its own PID (never by name: other people on this machine run
servers too). Servers are pinned to one core and the generator to the
other with ``taskset``, as in ``../shared/anchors/performance.md``, so that
server CPU is counted on a core the generator does not compete for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


__all__ = [
    "REPO_ROOT",
    "Machine",
    "Process",
    "free_port",
    "postgres_cpu_secs",
    "start_redis",
    "start_reference",
    "start_tickmark",
]

logger = logging.getLogger(__name__)

#: The checkout being measured; servers run from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
_CLOCK_TICKS_PER_SEC = os.sysconf("SC_CLK_TCK")
# How long a server may take to answer its first request.
_START_TIMEOUT_SECS = 30.0
# How long a server may take to exit after SIGTERM before it is killed.
_STOP_TIMEOUT_SECS = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pinned(cpus: str | None, argv: list[str]) -> list[str]:
    if cpus is None or shutil.which("taskset") is None:
        return argv
    # taskset execs the command, so the PID we get is the program's own.
    return ["taskset", "-c", cpus, *argv]


class Process:
    """A process this run started.

    Args:
        name: a label for reports.
        popen: the running process.
        log_path: where its standard error goes; None when discarded.

    """

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None
    ) -> None:
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path

    def cpu_secs(self) -> float:
        """User plus system CPU time of every thread of the process."""
        return _stat_cpu_secs(self.pid)

    def rss_kib(self) -> int:
        """Resident set size now, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.pid}")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, size_bytes: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-size_bytes:]

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the limit."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.popen.wait, _STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop; killing pid %d", self.name, self.pid)
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait, 5)


def _stat_cpu_secs(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after it may not.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_SEC


def postgres_cpu_secs(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database``.

    Read-only: these are the machine's PostgreSQL processes, not ours;
    the bench only reads their /proc entries to report their load.
    """
    found = {}
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if cmdline.startswith(b"postgres: ") and marker in cmdline:
                found[int(entry.name)] = _stat_cpu_secs(int(entry.name))
        except (OSError, ValueError):
            continue  # it ended while we looked
    return found


class Machine:
    """Whole-machine CPU use, to tell when other load shared the cores."""

    @staticmethod
    def cpu_secs() -> dict[str, float]:
        """Busy, softirq, steal and total CPU seconds since boot, all cores.

        Softirq (the kernel's network receive work, among others) is not
        charged to any process, and steal is time the hypervisor gave to
        other machines: both are reported apart from other processes' use.
        """
        line = Path("/proc/stat").read_text().splitlines()[0].split()
        ticks = [int(v) for v in line[1:9]]
        idle, iowait, irq, softirq, steal = ticks[3:]
        total = sum(ticks)
        return {
            "busy": (total - idle - iowait) / _CLOCK_TICKS_PER_SEC,
            "softirq": (irq + softirq) / _CLOCK_TICKS_PER_SEC,
            "steal": steal / _CLOCK_TICKS_PER_SEC,
            "total": total / _CLOCK_TICKS_PER_SEC,
        }


# Settings a developer's shell may hold that would change what is measured:
# every server starts from Tickmark's defaults instead.
_SETTING_PREFIXES = ("WS_", "DB_", "PRESENCE_", "SIGN_IN_", "SESSION_", "SMTP_")
_SETTING_NAMES = {"DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "ALLOWED_ORIGINS"}


def _clean_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name not in _SETTING_NAMES and not name.startswith(_SETTING_PREFIXES)
    }


def _launch(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # noqa: S603 (our own programs, fixed arguments)
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return Process(name, popen, log_path)


async def _wait_http_ok(process: Process, port: int, path: str) -> None:
    """Poll ``GET path`` until it answers 200."""
    deadline = time.monotonic() + _START_TIMEOUT_SECS
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited: {process.log_tail()}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request.encode())
            status_line = await reader.readline()
            writer.close()
            if b" 200 " in status_line:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} did not become ready: {process.log_tail()}")


async def _wait_tcp(process: Process, port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECS
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited: {process.log_tail()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{process.name} did not start: {process.log_tail()}")


async def start_tickmark(
    name: str,
    *,
    database_url: str,
    redis_url: str | None,
    log_dir: Path,
    cpus: str | None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Process, int]:
    """``tickmark serve`` on a free loopback port; returns it and the port.

    The settings are the defaults but for the per-connection frame rate,
    raised so that a few poster connections can post thousands of
    messages a second (subscribers send only a handful of frames).
    """
    port = free_port()
    data_dir = log_dir / f"{name}-data"
    data_dir.mkdir(exist_ok=True)
    env = {
        **_clean_environment(),
        "DATABASE_URL": database_url,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": "bench-secret-key",
        "TICKMARK_DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "WS_FRAMES_PER_SEC": "100000",
        **(extra_env or {}),
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    argv = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    process = _launch(name, _pinned(cpus, argv), env, log_dir)
    try:
        await _wait_http_ok(process, port, "/readyz")
    except BaseException:
        await process.stop()
        raise
    return process, port


async def start_reference(
    name: str, *, deflate: bool, log_dir: Path, cpus: str | None
) -> tuple[Process, int]:
    """The reference server on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.reference", "--port", str(port)]
    if deflate:
        argv.append("--deflate")
    process = _launch(name, _pinned(cpus, argv), dict(os.environ), log_dir)
    try:
        await _wait_tcp(process, port)
    except BaseException:
        await process.stop()
        raise
    return process, port


async def start_redis(log_dir: Path, cpus: str | None) -> tuple[Process, int]:
    """A redis-server of our own: loopback, nothing kept on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the bench needs redis-server (Debian: redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(log_dir)]
    process = _launch("redis", _pinned(cpus, argv), dict(os.environ), log_dir)
    try:
        await _wait_tcp(process, port)
    except BaseException:
        await process.stop()
        raise
    return process, port
