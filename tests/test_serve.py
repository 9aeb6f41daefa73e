"""``lit-linreg serve``: the real server in a subprocess on a free loopback port, spoken to over HTTP.

One server per model for the whole module (start-up costs seconds on 2 cores): the tutorial's checkpoint for the
answers, the bad requests, the concurrent load and SIGTERM; the example CSV's for rows keyed by feature name and
Ctrl-C.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lit_linreg.deploy import load_for_inference
from lit_linreg.deploy.payload import MAX_BODY_BYTES, MAX_ROWS
from lit_linreg.launch import main

from .deploy_helpers import Server, group_processes, poisoned, predict, request, trained
from .helpers import TUTORIAL_PREDICTIONS

TUTORIAL_X = [round(0.8 + 0.02 * i, 2) for i in range(10)]  # the tutorial's test split


@pytest.fixture(scope="module")
def tutorial_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained("tutorial", tmp_path_factory)


@pytest.fixture(scope="module")
def server(tutorial_ckpt: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Server(tutorial_ckpt, tmp_path_factory.mktemp("serve"))
    yield server
    server.kill()  # only if a test failed before test_sigterm_stops_it_cleanly


def expected(ckpt: Path, rows: list[list[float]]) -> list[float]:
    """What the checkpoint itself predicts for ``rows`` (float32, as the server computes)."""
    task, _ = load_for_inference(str(ckpt))
    with torch.inference_mode():
        return task(torch.tensor(rows, dtype=torch.float32))[:, 0].tolist()


def test_it_prints_its_address_and_is_healthy(server: Server) -> None:
    assert f"listening on http://127.0.0.1:{server.port}" in server.output()
    assert "(1 feature)" in server.output()
    assert request(server.port, "GET", "/health") == (200, "ok")


def test_the_tutorial_predictions(server: Server, tutorial_ckpt: Path) -> None:
    status, body = predict(server.port, [0.8, 0.98])
    assert status == 200 and list(body) == ["y_pred"]
    assert [round(y, 4) for y in body["y_pred"]] == [0.8561, 0.9813]
    # The whole test split, also as one-value rows: lit-linreg predict's numbers, and the checkpoint's exactly.
    for x in (TUTORIAL_X, [[v] for v in TUTORIAL_X]):
        status, body = predict(server.port, x)
        assert status == 200 and [round(y, 4) for y in body["y_pred"]] == TUTORIAL_PREDICTIONS
        assert body["y_pred"] == expected(tutorial_ckpt, [[v] for v in TUTORIAL_X])


def test_curl_style_requests_without_a_json_content_type(server: Server) -> None:
    # curl -d sends application/x-www-form-urlencoded unless told otherwise; the body is still read as JSON.
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = request(server.port, "POST", "/predict", b'{"x": [0.8]}', headers)
    assert status == 200 and round(body["y_pred"][0], 4) == 0.8561


BAD_REQUESTS = [
    # (body, status, words of the detail)
    (b"", 400, "request body is empty"),
    (b"   \n", 400, "request body is empty"),
    (b"not json", 400, "not valid JSON"),
    (b'{"x": [0.8],}', 400, "not valid JSON"),
    (b"\xff\xfe\x00", 400, "not valid JSON"),
    (b'{"x": [NaN]}', 400, "NaN is not a JSON number"),
    (b'{"x": [Infinity]}', 400, "Infinity is not a JSON number"),
    (b'{"x": [-Infinity, 1]}', 400, "-Infinity is not a JSON number"),
    (b'{"x": [1e999]}', 422, "beyond float32"),
    (b'{"x": [1e39]}', 422, "beyond float32"),
    (b'{"x": [' + b"9" * 5000 + b"]}", 400, "not valid JSON"),
    (b"[" * 100_000, 400, "nested too deeply"),
    (b"[0.8, 0.98]", 422, "must be a JSON object"),
    (b'"x"', 422, "must be a JSON object"),
    (b'{"y": [0.8]}', 422, 'has no "x"'),
    (b'{"x": []}', 422, '"x" is empty'),
    (b'{"x": 0.8}', 422, '"x" must be a list'),
    (b'{"x": null}', 422, '"x" must be a list'),
    (b'{"x": ["0.8"]}', 422, 'x[0] is the text "0.8", not a number'),
    (b'{"x": [0.8, "abc"]}', 422, 'x[1] is the text "abc"'),
    (b'{"x": [true]}', 422, "x[0] is the boolean true"),
    (b'{"x": [null]}', 422, "x[0] is null"),
    (b'{"x": [[0.8, 0.9]]}', 422, "x[0] has 2 values, but the model takes 1 feature"),
    (b'{"x": [[]]}', 422, "x[0] has 0 values"),
    (b'{"x": [[0.8], 0.9]}', 422, "x[1] is a number but x[0] is a list"),
    (b'{"x": [{"x": 0.8}]}', 422, "rows keyed by feature name need a model trained on named CSV columns"),
    (json.dumps({"x": [0.5] * (MAX_ROWS + 1)}).encode(), 413, f"over the cap of {MAX_ROWS:,}"),
    (b'{"x": [' + b"0.5, " * (MAX_BODY_BYTES // 5) + b"0.5]}", 413, f"the cap is {MAX_BODY_BYTES:,} bytes"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_REQUESTS, ids=lambda v: repr(v)[:40])
def test_a_bad_request_gets_a_4xx_naming_the_problem(server: Server, body: bytes, status: int, words: str) -> None:
    got, answer = request(server.port, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert (got, list(answer)) == (status, ["detail"]), answer
    assert words in answer["detail"]
    assert "\n" not in answer["detail"]
    # The server keeps serving, on a fresh connection as on the same one.
    assert round(predict(server.port, [0.8])[1]["y_pred"][0], 4) == 0.8561


def test_an_oversized_body_without_a_length_is_cut_off_at_the_cap(server: Server) -> None:
    body = b'{"x": [' + b"0.5, " * (MAX_BODY_BYTES // 4) + b"0.5]}"
    status, answer = request(server.port, "POST", "/predict", body, chunked=True)
    assert status == 413 and "the cap is" in answer["detail"]


def test_other_methods_and_paths_are_4xx_too(server: Server) -> None:
    assert request(server.port, "GET", "/predict")[0] == 405
    assert request(server.port, "POST", "/nowhere", b"{}")[0] == 404


def test_bad_requests_on_one_keep_alive_connection(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for body, status, _ in BAD_REQUESTS[:26]:  # the small ones
            assert request(server.port, "POST", "/predict", body, connection=connection)[0] == status
            assert predict(server.port, [0.98], connection)[1]["y_pred"][0] == pytest.approx(0.9813, abs=5e-5)
    finally:
        connection.close()


def test_concurrent_load_8_clients_150_requests_each(server: Server, tutorial_ckpt: Path) -> None:
    values = [round(0.01 * i, 2) for i in range(-100, 301)]
    answers = dict(zip(values, expected(tutorial_ckpt, [[v] for v in values])))
    failures: list[str] = []
    done = [0] * 8

    def client(i: int) -> None:
        pick = random.Random(i)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for _ in range(150):
                x = [pick.choice(values) for _ in range(pick.choice((1, 1, 1, 3, 10)))]
                status, body = predict(server.port, x, connection)
                if status != 200 or body["y_pred"] != [answers[v] for v in x]:
                    failures.append(f"client {i}: x={x} -> {status} {body}")
                done[i] += 1
        except Exception as err:  # noqa: BLE001 -- every failure is reported below
            failures.append(f"client {i}: {err!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == [] and done == [150] * 8


def test_sigterm_stops_it_cleanly(server: Server) -> None:
    seconds = server.stop(signal.SIGTERM)
    assert seconds < 10, f"took {seconds:.1f} s"
    assert server.process.returncode == 0
    assert server.output().rstrip().endswith("lit-linreg serve: stopped")
    assert "Traceback" not in server.errors(), server.errors()
    with pytest.raises(OSError):  # the port is closed
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


@pytest.mark.skipif(sys.platform != "linux", reason="reads the processes from /proc")
@pytest.mark.parametrize("when", ["listening", "while its model worker starts"])
def test_sigkill_of_the_server_ends_every_child_and_closes_the_port(
    tutorial_ckpt: Path, tmp_path_factory: pytest.TempPathFactory, when: str
) -> None:
    server = Server(tutorial_ckpt, tmp_path_factory.mktemp("sigkill"), wait=when == "listening")
    pgid = server.process.pid
    try:
        deadline = time.monotonic() + 120
        while not any("spawn_main" in command for command in group_processes(pgid).values()):  # the model worker
            assert server.process.poll() is None and time.monotonic() < deadline, server.errors()
            time.sleep(0.05)
        children = set(group_processes(pgid)) - {pgid}
        server.process.kill()
        server.process.wait(10)
        deadline = time.monotonic() + 30  # a worker still importing torch sees its parent gone when it gets to setup
        while group_processes(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_processes(pgid) == {}, f"left running of {children}: {group_processes(pgid)}"
        with pytest.raises(OSError):  # the port is closed
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    finally:
        server.kill()


# Rows keyed by feature name, and Ctrl-C, on a model of the example CSV (x1, x2, x3, standardised).
def test_csv_model_rows_by_feature_name_and_ctrl_c(tmp_path_factory: pytest.TempPathFactory) -> None:
    ckpt = trained("csv", tmp_path_factory)
    rows = [[0.5, 5.0, -10.0], [0.1, 9.0, 40.0]]
    server = Server(ckpt, ckpt.parents[3])
    try:
        assert "(3 features (x1, x2, x3))" in server.output()
        named = [dict(zip(("x1", "x2", "x3"), row)) for row in rows]
        want = expected(ckpt, rows)
        assert predict(server.port, rows) == (200, {"y_pred": want})
        assert predict(server.port, named) == (200, {"y_pred": want})
        assert predict(server.port, [{"x3": -10.0, "x2": 5.0, "x1": 0.5}])[1]["y_pred"] == want[:1]  # any key order
        for x, words in [
            ([0.5, 5.0, -10.0], '"x" is a flat list of numbers, but the model takes 3 features (x1, x2, x3)'),
            ([[0.5, 5.0]], "x[0] has 2 values, but the model takes 3 features"),
            ([{"x1": 0.5, "x2": 5.0}], "x[0] lacks x3; the model's features are x1, x2, x3"),
            ([{"x1": 0.5, "x2": 5.0, "x3": 1, "y": 2}], 'x[0] has the unknown key(s) "y"'),
            ([named[0], rows[1]], "x[1] is a list but x[0] is an object"),
            ([{"x1": "a", "x2": 5.0, "x3": 1}], 'x[0]["x1"] is the text "a"'),
            ([[3e38, 0, 0]], "its prediction would overflow float32"),  # (3e38 - mean) / std overflows float32
        ]:
            status, answer = predict(server.port, x)
            assert status == 422 and words in answer["detail"], answer
        assert predict(server.port, named) == (200, {"y_pred": want})
        seconds = server.stop(signal.SIGINT)  # Ctrl-C: the terminal signals every process of the group
    finally:
        server.kill()
    assert seconds < 10, f"took {seconds:.1f} s"
    assert server.process.returncode == 0 and server.output().rstrip().endswith("stopped")
    assert "Traceback" not in server.errors(), server.errors()


# Start-up failures: one line, exit 2, before anything listens.
def start_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", *args])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit-linreg: error: "), lines
    return lines[0]


def test_a_bad_checkpoint_fails_at_start_up(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "checkpoint missing.ckpt does not exist" in start_error(capsys, "--ckpt_path", "missing.ckpt")
    (tmp_path / "damaged.ckpt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert "is damaged or not a PyTorch checkpoint" in start_error(capsys, "--ckpt_path", "damaged.ckpt")
    line = start_error(capsys, "--ckpt_path", "last")
    assert "there is no checkpoints/default/version_*/last.ckpt" in line and "add the fit's --config" in line


POISONS = [("tutorial", "weights", math.nan), ("tutorial", "bias", -math.inf), ("csv", "feature_std", 0.0),
           ("csv", "feature_mean", math.inf), ("csv", "weight", math.nan)]  # fmt: skip


@pytest.mark.parametrize(("kind", "name", "value"), POISONS)
def test_a_checkpoint_with_non_finite_weights_fails_at_start_up(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, kind: str, name: str, value: float
) -> None:
    ckpt, key = poisoned(trained(kind, tmp_path_factory), tmp_path_factory.mktemp("poisoned"), name, value)
    line = start_error(capsys, "--ckpt_path", str(ckpt))
    assert f"checkpoint {ckpt} holds unusable weights: {key} has 1 " in line and "NaN or infinite value(s)" in line


def test_a_prediction_that_overflows_is_422_not_null() -> None:
    from fastapi import HTTPException

    from lit_linreg.deploy.litapi import PredictAPI

    api = PredictAPI("unused.ckpt", 1)
    assert api.encode_response(torch.tensor([[0.5], [1.5]])) == {"y_pred": [0.5, 1.5]}
    for y in (math.inf, -math.inf, math.nan):
        with pytest.raises(HTTPException) as refused:
            api.encode_response(torch.tensor([[0.5], [y]]))
        assert refused.value.status_code == 422
        assert refused.value.detail.startswith("the prediction for row 1 of the request overflows float32")


def test_bad_options_fail_at_start_up(capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path) -> None:
    ckpt = str(tutorial_ckpt)
    assert "--host must be one of 127.0.0.1, 0.0.0.0, ::" in start_error(capsys, "--ckpt_path", ckpt, "--host", "x")
    assert "--port must be between 1024 and 65535" in start_error(capsys, "--ckpt_path", ckpt, "--port", "80")
    assert "--max_batch_size must be at least 1" in start_error(capsys, "--ckpt_path", ckpt, "--max_batch_size", "0")
    assert "lit-linreg serve --help" in start_error(capsys, "--ckpt_path", ckpt, "--port", "eighty")
    assert "--ckpt_path" in start_error(capsys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert f"cannot listen on 127.0.0.1:{port}" in start_error(capsys, "--ckpt_path", ckpt, "--port", port)


@pytest.mark.parametrize("missing", ["litserve", "fastapi", "uvicorn"])
def test_without_the_serve_extra_one_line_names_the_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # as if not installed: importing it fails
    line = start_error(capsys, "--ckpt_path", "checkpoints/base/version_0/last.ckpt")
    assert f"needs the optional package '{missing}'" in line and "pip install -e '.[serve]'" in line
