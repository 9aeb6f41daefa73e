"""The LitServe side of ``lit-linreg serve``: the LitAPI, the guard that checks each request in the HTTP process before
it is queued (LitServe 0.2.19 fails a whole batch with one request's ``decode_request`` error), and the ties that end
every worker with the server. Imported once the ``serve`` extra is known to be installed."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from multiprocessing import resource_tracker
from typing import Any

import litserve as ls
import torch
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from torch import Tensor

from lit_linreg.deploy.model_io import load_for_inference
from lit_linreg.deploy.payload import MAX_BODY_BYTES, RequestError, RowParser, parse_body, too_large

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` ends, even by SIGKILL (Linux: PDEATHSIG; elsewhere a polling thread)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def tie_forked_children() -> None:
    """Every process forked from now on dies with its parent (the spawned model worker ties itself in ``setup``)."""
    forking = os.getpid()

    def before() -> None:
        nonlocal forking
        forking = os.getpid()

    os.register_at_fork(before=before, after_in_child=lambda: die_with_parent(forking))


class PredictAPI(ls.LitAPI):
    """``POST /predict``: rows in, the checkpoint's predictions out; requests arriving together share one forward."""

    def __init__(self, ckpt_path: str, in_features: int, max_batch_size: int = 1, batch_timeout: float = 0.0) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.ckpt_path, self.in_features = ckpt_path, in_features
        self.server_pid = os.getpid()  # the process that starts this worker

    def setup(self, device: str) -> None:
        die_with_parent(self.server_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops this one
        torch.set_num_threads(1)  # a linear model on a few rows: threads only add hand-offs
        self.task, _ = load_for_inference(self.ckpt_path)

    def decode_request(self, request) -> Tensor:  # noqa: ANN001 -- unannotated: LitServe then parses the JSON body
        x = request.get("x") if isinstance(request, dict) else None
        try:
            rows = torch.tensor(x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            rows = None
        if rows is None or rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != self.in_features:
            raise HTTPException(422, f"x must be rows of {self.in_features} numbers")  # only without PredictGuard
        return rows

    def batch(self, inputs: list[Tensor]) -> list[Tensor]:
        return inputs  # rows per request differ: predict concatenates them (LitServe's unbatch splits the list)

    def predict(self, x: Tensor | list[Tensor]) -> Tensor | list[Tensor]:
        with torch.inference_mode():
            if isinstance(x, Tensor):
                return self.task(x)
            return list(torch.split(self.task(torch.cat(x)), [len(t) for t in x]))

    def encode_response(self, output: Tensor) -> dict[str, list[float]]:
        overflowed = (~torch.isfinite(output)).any(dim=1).nonzero()  # PredictGuard refuses such rows: a backstop
        if len(overflowed):
            raise HTTPException(
                422,
                f"the prediction for row {int(overflowed[0, 0])} of the request overflows float32 (magnitudes up to "
                f"3.4e38, which the model computes in): its inputs are too large for this model; send smaller values",
            )
        return {"y_pred": output[:, 0].tolist()}


class PredictGuard:
    """ASGI middleware: answers each bad ``POST <path>`` body itself (4xx ``{"detail": ...}``), passes good ones on as
    canonical JSON ``{"x": [[float, ...], ...]}`` and other routes untouched."""

    def __init__(self, app: Any, parser: RowParser, path: str = "/predict") -> None:
        self.app, self.parser, self.path = app, parser, path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
            if body is None:  # the client went away
                return
            rows = self.parser.rows(parse_body(body))
        except RequestError as err:
            await JSONResponse({"detail": err.message}, err.status)(scope, receive, send)
            return
        canonical = json.dumps({"x": rows}, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(canonical)).encode())]
        messages = iter([{"type": "http.request", "body": canonical, "more_body": False}])

        async def replay() -> dict:
            return next(messages, None) or await receive()

        await self.app({**scope, "headers": headers}, replay, send)

    @staticmethod
    async def _read_body(scope: dict, receive: Any) -> bytes | None:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                raise too_large(int(value))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                raise too_large()
            more = message.get("more_body", False)
        return b"".join(chunks)


class Server(ls.LitServer):
    """A LitServer whose model worker starts with SIGINT blocked: only the main process, which stops it, acts on
    Ctrl-C (a worker still importing torch would print a KeyboardInterrupt traceback)."""

    def launch_inference_worker(self, lit_api: ls.LitAPI) -> list:
        resource_tracker.ensure_running()  # started first: starting it unblocks SIGINT
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the child inherits it; here it waits
        try:
            return super().launch_inference_worker(lit_api)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def build_server(
    ckpt_path: str, parser: RowParser, max_batch_size: int, batch_timeout: float, fast_queue: bool
) -> Server:
    """The LitServer for one checkpoint: one CPU worker, ``/predict`` guarded, no OpenAPI pages."""
    return Server(
        PredictAPI(ckpt_path, parser.in_features, max_batch_size=max_batch_size, batch_timeout=batch_timeout),
        accelerator="cpu",
        workers_per_device=1,
        middlewares=[(PredictGuard, {"parser": parser})],
        fast_queue=fast_queue,
        disable_openapi_url=True,
    )
