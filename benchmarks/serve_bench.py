"""Benchmark: ``lit-linreg serve`` (LitServe) against a minimal FastAPI + uvicorn endpoint calling the same model.

Run: make bench   (or .venv/bin/python benchmarks/serve_bench.py [--requests 800] [--rounds 3])

The servers run on this machine, on loopback, each loading the same tutorial checkpoint (trained here first): the
minimal endpoint for the whole run, and beside it, one at a time, ``lit-linreg serve`` with its defaults, with
``--fast_queue false`` (LitServe's multiprocessing queue for the answers instead of ZeroMQ) and with each batching
setting. Every measurement of ``lit-linreg serve`` follows one of the minimal endpoint, taken while lit-linreg serve
is paused (SIGSTOP: LitServe's batched loop polls its queue even when idle), so both see the same load of a shared
machine; "vs minimal" is the median of those pairs' ratios. A measurement: 1 or 8 concurrent clients (threads of
this script, each on its own keep-alive connection, one ``{"x": [0.8]}`` request at a time) after a warm-up, every
answer checked. Prints markdown tables.

The minimal endpoint is the least a FastAPI service can do: parse the JSON, call the model, return the list (no
checks of the request). The clients share the machine's cores with the servers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"x": [0.8]}'
EXPECTED = 0.8561  # the tutorial's prediction for x = 0.8, to 4 decimals

MINIMAL_SERVER = """
import sys, torch, uvicorn
from fastapi import FastAPI, Request
from lit_linreg.deploy import load_for_inference

torch.set_num_threads(1)
task, _ = load_for_inference(sys.argv[1])
app = FastAPI(openapi_url=None)

@app.post("/predict")
async def predict(request: Request):
    x = torch.tensor((await request.json())["x"], dtype=torch.float32).reshape(-1, 1)
    with torch.inference_mode():
        return {"y_pred": task(x)[:, 0].tolist()}

@app.get("/health")
async def health():
    return "ok"

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready in time")


class Server:
    """A server subprocess on a free loopback port, in a process group of its own (paused and resumed as a whole)."""

    def __init__(self, command: list[str], cwd: str) -> None:
        self.port = free_port()
        self.log = open(Path(cwd) / f"server-{self.port}.log", "w")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [arg.replace("{port}", str(self.port)) for arg in command],
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(self.port, self.process)
        except RuntimeError:
            self.stop()
            raise

    def pause(self) -> None:
        """SIGSTOP every process of the server, so that it takes no CPU (LitServe's batched loop polls while idle)."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def load(port: int, clients: int, requests_per_client: int) -> dict[str, float]:
    """``clients`` threads, each sending ``requests_per_client`` requests on its own keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        barrier.wait()
        for _ in range(requests_per_client):
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", BODY, headers)
                response = connection.getresponse()
                data = response.read()
                latencies[i].append(time.perf_counter() - start)
                if response.status != 200 or round(json.loads(data)["y_pred"][0], 4) != EXPECTED:
                    errors.append(f"{response.status} {data[:100]!r}")
            except (OSError, http.client.HTTPException) as err:
                errors.append(repr(err))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    every = sorted(t for per_client in latencies for t in per_client)
    if errors:
        raise RuntimeError(f"{len(errors)} errors, e.g. {errors[0]}")
    return {
        "rps": len(every) / elapsed,
        "p50": 1000 * every[len(every) // 2],
        "p99": 1000 * every[min(len(every) - 1, int(len(every) * 0.99))],
    }


def measure(server: Server, clients: int, requests: int) -> dict[str, float]:
    load(server.port, clients, max(5, requests // (8 * clients)))  # warm-up: connections, caches
    return load(server.port, clients, requests // clients)


def compare(minimal: Server, command: list[str], cwd: str, rounds: int, requests: int) -> dict[int, list[tuple]]:
    """Start ``command``, then ``rounds`` times and for 1 and 8 clients: measure the minimal server while this one is
    paused, then this one. Per client count, the (minimal, this) measurement pairs."""
    server = Server(command, cwd)
    pairs: dict[int, list[tuple]] = {1: [], 8: []}
    try:
        for _ in range(rounds):
            for clients in (1, 8):
                server.pause()
                base = measure(minimal, clients, requests)
                server.resume()
                pairs[clients].append((base, measure(server, clients, requests)))
    finally:
        server.stop()
    return pairs


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(label: str, clients: int, pairs: list[tuple]) -> str:
    rps = median([r["rps"] for _, r in pairs])
    p50, p99 = median([r["p50"] for _, r in pairs]), median([r["p99"] for _, r in pairs])
    ratio = median([r["rps"] / b["rps"] for b, r in pairs])
    return f"| {label} | {clients} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f}x |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="requests per measurement (split over the clients)")
    parser.add_argument("--rounds", type=int, default=3, help="measurement pairs per setting (medians are reported)")
    parser.add_argument(
        "--batching",
        default="4:0.001,8:0.001,8:0.005,16:0.002,32:0.005",
        help="max_batch_size:batch_timeout settings of lit-linreg serve to compare with the default (1:0)",
    )
    args = parser.parse_args()
    python = sys.executable
    env_line = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        print(f"serve benchmark on {env_line}; training the tutorial checkpoint...", flush=True)
        subprocess.run(
            [python, "-m", "lit_linreg", "fit", "--config", str(ROOT / "configs" / "base.yaml"),
             "--figures.enabled", "false", "--table.every_n_epochs", "0"],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        ckpt = str(Path(tmp) / "checkpoints" / "base" / "version_0" / "last.ckpt")
        script = Path(tmp) / "minimal_server.py"
        script.write_text(MINIMAL_SERVER)
        serve = [python, "-m", "lit_linreg", "serve", "--ckpt_path", ckpt, "--port", "{port}"]
        settings = {
            "lit-linreg serve": serve,
            "lit-linreg serve --fast_queue false": [*serve, "--fast_queue", "false"],
            **{
                f"{size}:{timeout}": [*serve, "--max_batch_size", size, "--batch_timeout", timeout]
                for size, timeout in (setting.split(":") for setting in args.batching.split(","))
            },
        }
        minimal = Server([python, str(script), ckpt, "{port}"], tmp)
        results = {}
        try:
            for label, command in settings.items():
                results[label] = compare(minimal, command, tmp, args.rounds, args.requests)
                for clients, pairs in results[label].items():
                    print(f"  {label}, {clients} client(s): {row(label, clients, pairs)}", flush=True)
        finally:
            minimal.stop()

    every_minimal = {clients: [(b, b) for r in results.values() for b, _ in r[clients]] for clients in (1, 8)}
    print(
        f"\n{args.requests} requests of {BODY.decode()} per measurement, on keep-alive connections; {env_line}; "
        f"medians of {args.rounds} measurements, each right after one of the minimal endpoint (vs minimal: the "
        f"median of those ratios)\n"
    )
    print("| server | clients | requests/s | p50 ms | p99 ms | vs minimal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for clients in (1, 8):
        print(row("minimal FastAPI + uvicorn", clients, every_minimal[clients]))
    for label in ("lit-linreg serve", "lit-linreg serve --fast_queue false"):
        for clients in (1, 8):
            print(row(label, clients, results[label][clients]))
    print("\nlit-linreg serve by batching setting (--max_batch_size:--batch_timeout; 1:0 is the default):\n")
    print("| batching | clients | requests/s | p50 ms | p99 ms | vs minimal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label in ("lit-linreg serve", *list(settings)[2:]):
        for clients in (1, 8):
            print(row("1:0" if label == "lit-linreg serve" else label, clients, results[label][clients]))


if __name__ == "__main__":
    main()
