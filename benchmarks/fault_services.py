"""Private Redis, RabbitMQ and PostgreSQL instances for the fault script (:mod:`benchmarks.faults`).

Each listens on its own free loopback port with its files in a temporary folder, so restarting it
disturbs nobody else's tests on the shared services of the machine. PostgreSQL runs as the
``postgres`` user (the script runs as root, as CI does) with trust authentication on loopback; RabbitMQ
as ``rabbitmq`` (its start script switches to it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.server import free_port


def wait_port(port: int, up: bool, timeout: float = 30.0) -> None:
    """Wait until a TCP connection to ``port`` succeeds (``up``) or fails (not ``up``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                reachable = True
        except OSError:
            reachable = False
        if reachable == up:
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} in {timeout} s")


class PrivateRedis:
    """``redis-server`` on a free port; ``persistent`` keeps an append-only file (fsync always),
    otherwise nothing survives a restart (as ``.ci/run`` starts the shared one)."""

    def __init__(self, persistent: bool) -> None:
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="visionserve-redis-")
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.folder]
        self.process = subprocess.Popen([*command, *durability], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        wait_port(self.port, up=False)

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb``) on a free port, with a ``visionserve`` database."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="visionserve-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self._as_postgres(self._bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._as_postgres(self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "visionserve")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/visionserve"

    @staticmethod
    def _bin(name: str) -> str:
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        if not found:
            raise RuntimeError(f"PostgreSQL's {name} is not installed")
        return str(found[-1])

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.folder,
            env={**os.environ, "PGHOST": "127.0.0.1"},
        )

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        log = str(self.folder / "log")
        mode = ["-m", "fast"] if action == "stop" else []
        self._as_postgres(self._bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", *mode, action)

    def start(self) -> None:
        self._ctl("start")
        wait_port(self.port, up=True)

    def stop(self) -> None:
        self._ctl("stop")
        wait_port(self.port, up=False)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, RuntimeError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of its own (``rabbitmq-server`` with its own node name, AMQP and distribution
    ports, config and data folder, no plugins), so that restarting it disturbs nobody else's broker.
    ``restart`` stops and starts the RabbitMQ application (``rabbitmqctl stop_app``/``start_app``):
    every client connection drops, durable queues and persistent messages stay."""

    def __init__(self) -> None:
        self.port = free_port()
        self.node = f"visionserve-faults-{os.getpid()}@localhost"
        self.folder = Path(tempfile.mkdtemp(prefix="visionserve-rabbit-"))
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.folder / "enabled_plugins").write_text("[].\n")
        shutil.chown(self.folder, "rabbitmq", "rabbitmq")
        for child in self.folder.iterdir():
            shutil.chown(child, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "pid"),
        }
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port, up=True, timeout=240)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def restart(self, down_s: float) -> None:
        self._ctl("stop_app")
        wait_port(self.port, up=False)
        time.sleep(down_s)
        self._ctl("start_app")
        wait_port(self.port, up=True, timeout=120)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._ctl("stop")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
