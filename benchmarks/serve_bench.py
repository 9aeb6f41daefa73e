"""Benchmark: ``lit-linreg serve`` (LitServe) against a minimal FastAPI + uvicorn endpoint calling the same model.

Run: make bench   (or .venv/bin/python benchmarks/serve_bench.py [--requests 800] [--rounds 3])

Both servers run on this machine, on loopback, started by this script one at a time, each loading the same tutorial
checkpoint (trained here first). Each is measured with 1 and 8 concurrent clients (threads of this script, each on
its own keep-alive connection, one ``{"x": [0.8]}`` request at a time) after a warm-up; every answer is checked. The
two servers alternate for ``--rounds`` rounds and each row is the median, because the load of a shared 2-core
machine drifts. Then ``lit-linreg serve``'s batching settings, one round each. Prints markdown tables.

The minimal endpoint is the least a FastAPI service can do: parse the JSON, call the model, return the list (no
checks of the request). The clients share the machine's cores with the servers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
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
    """A server subprocess on a free loopback port; stopped with SIGTERM."""

    def __init__(self, command: list[str], cwd: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [arg.replace("{port}", str(self.port)) for arg in command],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_ready(self.port, self.process)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
    load(server.port, clients, max(10, requests // (4 * clients)))  # warm-up
    return load(server.port, clients, requests // clients)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="requests per measurement (split over the clients)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the main comparison (the median is reported)")
    parser.add_argument(
        "--batching",
        default="1:0,4:0.001,8:0.001,8:0.005,16:0.002,32:0.005",
        help="max_batch_size:batch_timeout settings of lit-linreg serve to compare (one round each)",
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
        ckpt = str(Path(tmp) / "checkpoints" / "base" / "last.ckpt")
        script = Path(tmp) / "minimal_server.py"
        script.write_text(MINIMAL_SERVER)
        serve = [python, "-m", "lit_linreg", "serve", "--ckpt_path", ckpt, "--port", "{port}"]
        servers = {"minimal FastAPI + uvicorn": [python, str(script), ckpt, "{port}"], "lit-linreg serve": serve}
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}

        def measure_all(name: str, command: list[str]) -> None:
            server = Server(command, tmp)
            try:
                for clients in (1, 8):
                    result = measure(server, clients, args.requests)
                    runs.setdefault((name, clients), []).append(result)
                    numbers = ", ".join(f"{k} {v:.2f}" for k, v in result.items())
                    print(f"  {name}, {clients} client(s): {numbers}", flush=True)
            finally:
                server.stop()

        for _ in range(args.rounds):  # interleaved: the machine's load drifts between rounds
            for name, command in servers.items():
                measure_all(name, command)
        settings = [setting.split(":") for setting in args.batching.split(",")]
        for size, timeout in settings:
            measure_all(f"{size}:{timeout}", [*serve, "--max_batch_size", size, "--batch_timeout", timeout])

    minimal = {clients: median(runs[("minimal FastAPI + uvicorn", clients)])["rps"] for clients in (1, 8)}
    print(
        f"\n{args.requests} requests of {BODY.decode()} per measurement on keep-alive connections; {env_line}; "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| server | clients | requests/s | p50 ms | p99 ms | vs minimal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in servers:
        for clients in (1, 8):
            r = median(runs[(name, clients)])
            ratio = r["rps"] / minimal[clients]
            print(f"| {name} | {clients} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {ratio:.2f}x |")
    print("\nlit-linreg serve by batching setting (one round each; vs minimal: its median above):\n")
    print("| max_batch_size | batch_timeout s | clients | requests/s | p50 ms | p99 ms | vs minimal |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, timeout in settings:
        for clients in (1, 8):
            r = runs[(f"{size}:{timeout}", clients)][0]
            ratio = r["rps"] / minimal[clients]
            print(
                f"| {size} | {timeout} | {clients} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {ratio:.2f}x |"
            )


if __name__ == "__main__":
    main()
