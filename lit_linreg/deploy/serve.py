"""``lit-linreg serve``: a trained checkpoint behind an HTTP endpoint, on LitServe (the ``serve`` extra)."""

from __future__ import annotations

import contextlib
import http.client
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

from lit_linreg.deploy import load_for_inference, parse_function_arguments, require_extra, resolve_checkpoint
from lit_linreg.deploy.model_io import prediction_bound
from lit_linreg.deploy.payload import RowParser
from lit_linreg.errors import UserError, require

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe binds to


def serve(
    ckpt_path: str,
    config: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 1,  # no batching: the README's serving benchmark found it no faster on a CPU
    batch_timeout: float = 0.0,
    fast_queue: bool = True,
) -> None:
    """Serve a checkpoint over HTTP: POST /predict {"x": [0.8, 0.98]} answers {"y_pred": [...]}; GET /health.

    Stops cleanly on Ctrl-C or SIGTERM; its worker processes end with it, even when it is killed. A request body may
    hold up to 1 MiB and 10,000 rows; a bad request gets a 4xx answer with {"detail": "<what is wrong>"}.

    Args:
        ckpt_path: The checkpoint: last or best (of the --config's run, as for predict) or a .ckpt file.
        config: The fit's config file, naming the run whose last/best checkpoint --ckpt_path means.
        host: The address to listen on: 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface).
        port: The TCP port to listen on (1024-65535).
        max_batch_size: Requests that arrive together are predicted in one forward pass of up to this many (1: no
            batching, the fastest on a CPU machine; see the README's benchmark).
        batch_timeout: Seconds to wait for a batch to fill before predicting what has arrived.
        fast_queue: Return answers from the model worker over ZeroMQ (LitServe's fast_queue), not a multiprocessing
            queue.
    """
    require(host in HOSTS, f"--host must be one of {', '.join(HOSTS)} (what LitServe can bind), got {host!r}")
    require(1024 <= port <= 65535, f"--port must be between 1024 and 65535, got {port}; the default is 8000")
    require(max_batch_size >= 1, f"--max_batch_size must be at least 1 (1 = no batching), got {max_batch_size}")
    require(
        math.isfinite(batch_timeout) and 0 <= batch_timeout <= 1,
        f"--batch_timeout must be between 0 and 1 second, got {batch_timeout}; the default is 0.0",
    )
    require_extra("serve", ["litserve", "fastapi", "uvicorn"] + (["zmq"] if fast_queue else []))

    main_pid = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        """SIGTERM and Ctrl-C stop LitServe; its HTTP process (forked later; uvicorn re-raises them) ends quietly."""
        if os.getpid() != main_pid:
            raise SystemExit(0)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, terminate) for number in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    try:
        path = resolve_checkpoint(ckpt_path, config)
        task, names = load_for_inference(path)
        parser = RowParser(int(task.hparams["in_features"]), names, prediction_bound(task))
        _check_port_free(host, port)

        from lit_linreg.deploy.litapi import build_server, tie_forked_children

        server = build_server(path, parser, max_batch_size, batch_timeout, fast_queue)
        address = f"http://{'[::]' if host == '::' else host}:{port}"
        line = (
            f"lit-linreg serve: {path} ({parser.describe()}) listening on {address} -- "
            f"POST {address}/predict, GET {address}/health; Ctrl-C or SIGTERM stops it"
        )
        threading.Thread(target=_announce_when_ready, args=(host, port, stop, line), daemon=True).start()
        tie_forked_children()
        try:
            server.run(host=host, port=port, log_level="warning", generate_client_file=False)
        except RuntimeError as err:  # LitServe: "One or more workers failed to start"
            raise UserError(f"the model worker could not start ({err}); see the lines above") from err
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for number, handler in previous.items():
            signal.signal(number, handler)
        _end_children()
    print("lit-linreg serve: stopped", flush=True)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(
                f"cannot listen on {host}:{port} ({err.strerror}); stop what uses the port or pick another with --port"
            ) from None


def _announce_when_ready(host: str, port: int, stop: threading.Event, line: str) -> None:
    """Print ``line`` once ``GET /health`` answers 200: the model is loaded and the HTTP server accepts requests."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    while not stop.wait(0.05):
        connection = http.client.HTTPConnection(target, port, timeout=1)
        with contextlib.suppress(OSError), contextlib.closing(connection):
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                print(line, flush=True)
                return


def _end_children(timeout: float = 3.0) -> None:
    """End what LitServe left running (a worker it could not stop, its queue manager) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(1)


def main(argv: list[str]) -> None:
    """``lit-linreg serve [options]``: see :func:`serve`."""
    serve(**parse_function_arguments(serve, "serve", argv))


if __name__ == "__main__":
    main(sys.argv[1:])
