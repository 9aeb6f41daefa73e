"""Helpers of the serve and export tests: trained checkpoints (once per session), a real server, an HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import CONFIGS, run

_TRAINED: dict[str, Path] = {}


def trained(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint ``last.ckpt`` of ``tutorial`` (configs/base.yaml, exactly) or ``csv`` (the example CSV, 100
    epochs), trained once per test session in a folder of its own (which also holds the CSV's data/)."""
    if kind not in _TRAINED:
        folder = tmp_path_factory.mktemp(f"trained-{kind}")
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            patch.setattr("sys.argv", ["lit-linreg"])
            if kind == "tutorial":
                run(
                    "fit",
                    "--config",
                    CONFIGS / "base.yaml",
                    "--figures.enabled",
                    "false",
                    "--table.every_n_epochs",
                    "0",
                )
                _TRAINED[kind] = folder / "checkpoints" / "base" / "version_0" / "last.ckpt"
            else:
                run("make-data")
                run(
                    "fit", "--config", CONFIGS / "csv_example.yaml", "--figures.enabled", "false",
                    "--table.every_n_epochs", "0", "--trainer.max_epochs", "100",
                )  # fmt: skip
                _TRAINED[kind] = folder / "checkpoints" / "csv_example" / "version_0" / "last.ckpt"
    return _TRAINED[kind]


def poisoned(ckpt: Path, folder: Path, name: str, value: float) -> tuple[Path, str]:
    """A copy of ``ckpt`` in ``folder`` whose state_dict entry ending in ``name`` has ``value`` in its first element,
    and that entry's full key."""
    import torch

    checkpoint = torch.load(ckpt, weights_only=True)
    key = next(k for k in checkpoint["state_dict"] if k.endswith(name))
    checkpoint["state_dict"][key].view(-1)[0] = value
    path = folder / f"poisoned-{name}-{value}.ckpt"
    torch.save(checkpoint, path)
    return path, key


def free_port() -> int:
    """A free loopback port (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m lit_linreg serve --ckpt_path <ckpt> --port <free port> [args]`` in its own process group."""

    def __init__(self, ckpt: Path, folder: Path, *args: str, timeout: float = 120, wait: bool = True) -> None:
        self.port = free_port()
        self.stdout, self.stderr = folder / f"serve-{self.port}.out", folder / f"serve-{self.port}.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lit_linreg",
                    "serve",
                    "--ckpt_path",
                    str(ckpt),
                    "--port",
                    str(self.port),
                    *args,
                ],
                cwd=folder,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # a process group of its own: Ctrl-C can be sent to it as a terminal would
            )
        deadline = time.monotonic() + timeout
        while wait and "listening on" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the server did not start:\n{self.output()}\n{self.errors()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.stdout.read_text()

    def errors(self) -> str:
        return self.stderr.read_text()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> float:
        """Send ``signum`` (SIGINT to the whole group, as Ctrl-C does) and return the seconds until every process of
        the group has ended."""
        start = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        self.process.wait(timeout)
        while group_alive(self.process.pid) and time.monotonic() - start < timeout:
            time.sleep(0.05)
        return time.monotonic() - start

    def kill(self) -> None:
        if group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def group_processes(pgid: int) -> dict[int, str]:
    """{pid: command line} of the live (not zombie) processes of the process group ``pgid`` (Linux's /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after "pid (name)": state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            pass
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
    chunked: bool = False,
) -> tuple[int, Any]:
    """(status, JSON body or text) of one request to the server on ``port``."""
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            connection.request(method, path, iter([body]), headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        if own:
            connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


def predict(port: int, x: Any, connection: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    return request(
        port, "POST", "/predict", json.dumps({"x": x}).encode(), {"Content-Type": "application/json"}, connection
    )
