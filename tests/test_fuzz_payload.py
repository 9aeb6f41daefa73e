"""Fuzzing the body of ``POST /predict`` (``deploy/payload.py``) with hypothesis.

Any bytes end as rows of finite float32 numbers or as a :class:`RequestError` with a 4xx status and a short one-line
message, never another exception; and a row that a model's parser accepts never makes that model predict inf or NaN.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lit_linreg.deploy.model_io import prediction_bound
from lit_linreg.deploy.payload import FLOAT32_MAX, MAX_ROWS, RequestError, RowParser, parse_body
from lit_linreg.task import LinearRegressionTask

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PARSERS = [RowParser(1), RowParser(3), RowParser(3, ["x1", "x2", "x3"]), RowParser(2, ["a", "b\nc"], max_rows=4)]

# JSON numbers of every shape: huge and tiny exponents, long mantissas, integers beyond 64 bits.
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # NaN and inf too: json.dumps writes them as NaN and Infinity, which JSON does not have
    st.sampled_from([3.4028234663852886e38, 3.4028235e38, 3.5e38, 1e38, -1e39, 5e-324, 1e-46, 0.0, -0.0]),
)
number_tokens = st.from_regex(r"\A-?(0|[1-9][0-9]{0,60})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?\Z")
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30))
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
named_row = st.dictionaries(st.sampled_from(["x1", "x2", "x3", "a", "b\nc", "y", "x1\u2028"]), values, max_size=4)
rows = st.one_of(
    st.lists(values, max_size=6),
    st.lists(st.lists(numbers, min_size=1, max_size=4), min_size=1, max_size=6),
    st.lists(numbers, min_size=1, max_size=6),
    st.lists(named_row, min_size=1, max_size=6),
)
payloads = st.one_of(values, st.fixed_dictionaries({"x": rows}), st.dictionaries(st.text(max_size=50), values))


def outcome(parser: RowParser, body: bytes) -> list[list[float]] | RequestError:
    """What the server makes of ``body``: the checked rows, or the RequestError its client gets."""
    try:
        return parser.rows(parse_body(body))
    except RequestError as err:
        return err


def assert_well_formed(parser: RowParser, result: list[list[float]] | RequestError) -> None:
    if isinstance(result, RequestError):
        assert 400 <= result.status < 500, result.status
        assert result.message and len(result.message.splitlines()) == 1 and len(result.message) <= 300, result.message
        assert str(result) == result.message
        return
    assert 1 <= len(result) <= parser.max_rows
    for row in result:
        assert len(row) == parser.in_features
        assert all(type(v) is float and math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in row), row
    assert torch.isfinite(torch.tensor(result, dtype=torch.float32)).all()
    json.dumps({"x": result}, allow_nan=False)  # what the guard forwards to the model


@FUZZ
@given(body=st.binary(max_size=300), parser=st.sampled_from(PARSERS))
def test_any_bytes(body: bytes, parser: RowParser) -> None:
    assert_well_formed(parser, outcome(parser, body))


@FUZZ
@given(payload=payloads, parser=st.sampled_from(PARSERS))
def test_any_json_value(payload: Any, parser: RowParser) -> None:
    body = json.dumps(payload).encode()
    assert_well_formed(parser, outcome(parser, body))


@FUZZ
@given(payload=payloads, parser=st.sampled_from(PARSERS), cut=st.integers(0, 400), junk=st.binary(max_size=4))
def test_json_cut_or_spliced(payload: Any, parser: RowParser, cut: int, junk: bytes) -> None:
    body = json.dumps(payload).encode()
    assert_well_formed(parser, outcome(parser, body[:cut] + junk + body[cut:]))
    assert_well_formed(parser, outcome(parser, body[:cut]))


@FUZZ
@given(tokens=st.lists(number_tokens, min_size=1, max_size=4), parser=st.sampled_from(PARSERS[:2]))
def test_number_tokens(tokens: list[str], parser: RowParser) -> None:
    flat, nested = f'{{"x": [{", ".join(tokens)}]}}', f'{{"x": [[{", ".join(tokens)}]]}}'
    for body in (flat, nested):
        assert_well_formed(parser, outcome(parser, body.encode()))


def test_a_row_count_over_the_cap_is_413() -> None:
    err = outcome(RowParser(1), json.dumps({"x": [0.5] * (MAX_ROWS + 1)}).encode())
    assert isinstance(err, RequestError) and err.status == 413


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
big = st.one_of(float32s, st.sampled_from([1e38, -1e38, 3.4e38, 2e38, 1e19, 1e-30]))


@FUZZ
@given(
    variant=st.sampled_from(["linear", "manual"]),
    standardize=st.booleans(),
    weight=st.lists(big, min_size=2, max_size=2),
    bias=big,
    mean=st.lists(big, min_size=2, max_size=2),
    std=st.lists(
        st.one_of(float32s.filter(lambda v: v > 0), st.sampled_from([1e-45, 1e-38, 1e38])), min_size=2, max_size=2
    ),  # fmt: skip
    x=st.lists(st.lists(st.one_of(numbers, big), min_size=2, max_size=2), min_size=1, max_size=3),
)
@example(  # x - mean overflows float32 though (x - mean) / std fits: lit-linreg 0.1 answered null
    variant="linear", standardize=True, weight=[1e-3, 0.0], bias=0.0, mean=[-3.4e38, 0.0], std=[10.0, 1.0],
    x=[[3.4e38, 0.0]],
)  # fmt: skip
def test_accepted_rows_never_overflow_the_model(
    variant: str, standardize: bool, weight: list, bias: float, mean: list, std: list, x: list
) -> None:
    task = LinearRegressionTask(variant=variant, in_features=2, standardize=standardize).eval()
    with torch.no_grad():
        for parameter, value in zip(task.model.parameters(), (weight, [bias])):
            parameter.copy_(torch.tensor(value).reshape(parameter.shape))
        if standardize:
            task.feature_mean.copy_(torch.tensor(mean))
            task.feature_std.copy_(torch.tensor(std))
    parser = RowParser(2, None, prediction_bound(task))
    result = outcome(parser, json.dumps({"x": x}).encode())
    assert_well_formed(parser, result)
    if not isinstance(result, RequestError):
        with torch.inference_mode():
            assert torch.isfinite(task(torch.tensor(result, dtype=torch.float32))).all(), result


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"x": [' + b"9" * 5000 + b"]}", "a whole number has more than 4,300 digits"),
        (b'{"x": [[' + b"9" * 4000 + b", 1]]}", "x[0][0] is 99999999999999999999...: beyond float32"),
        (b'{"x": [{"a": 1, "b\\nc": 2, "z\\nz": 3}]}', 'the unknown key(s) "z\\nz"'),
        (b'{"' + b"k" * 5000 + b'": 1}', '(its keys: "kkkkkkkkkkkkkkkkkkkk...")'),
    ],
)
def test_what_the_fuzzer_found(body: bytes, words: str) -> None:
    err = outcome(RowParser(2, ["a", "b\nc"]), body)
    assert isinstance(err, RequestError) and words in err.message, err
    assert_well_formed(RowParser(2), err)
