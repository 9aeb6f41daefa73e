"""``lit_linreg.files``: YAML bombs end in one clear line; other YAML loads exactly as jsonargparse loads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonargparse import ActionConfigFile, ArgumentParser, get_loader, set_loader

from lit_linreg import files
from lit_linreg.errors import UserError
from lit_linreg.files import MAX_CHARS, MAX_DEPTH, load_yaml
from lit_linreg.launch import main

from .helpers import CONFIGS

JSONARGPARSE_YAML = get_loader("yaml")
LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    + ["run_name: *a8"]
)
BOMBS = [
    # (text, words of the error)
    (LAUGHS, "line 7: it stands for more than 2,000,000 values once its aliases are expanded (a 'billion laughs')"),
    ("run_name: &a [*a]", ": the alias *a stands for a node that contains it (a recursive alias)"),
    ("a: &a {b: [1, *a]}", ": the alias *a stands for a node that contains it"),
    ("x: 1\nrun_name: " + "[" * 10_000 + "]" * 10_000, f"line 2: lists and mappings nest more than {MAX_DEPTH} levels"),
    ("[\n" * 150 + "]\n" * 150, f"line {MAX_DEPTH + 1}: lists and mappings nest more than {MAX_DEPTH} levels deep"),
    ("".join("  " * i + f"k{i}:\n" for i in range(2000)), "lists and mappings nest more than"),
    ("x: 1\n" + "#" * MAX_CHARS, f"is {MAX_CHARS + 5:,} characters long, over the limit of {MAX_CHARS:,} for YAML"),
]


@pytest.mark.parametrize(("text", "words"), BOMBS, ids=["laughs", "recursive", "recursive-map", "deep", "deep-lines",
                                                         "deep-block", "size"])  # fmt: skip
def test_each_breach_is_one_clear_line(text: str, words: str) -> None:
    with pytest.raises(UserError) as refused:
        load_yaml(text, "bomb.yaml")
    message = str(refused.value)
    assert message.startswith("config file bomb.yaml ") and words in message, message
    assert "\n" not in message and "; " in message  # what is wrong; how to fix it
    with pytest.raises(UserError, match="^an option's value"):
        load_yaml(text)


def test_expansion_is_counted_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_VALUES", 100)
    # a: 1 + 3 values; b: 1 + 3 * 4; c: 1 + 6 * 13 = 79; the mapping, its 3 keys and 4 + 13 + 79 values: 100.
    text = "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]"
    assert load_yaml(text) == JSONARGPARSE_YAML(text)
    with pytest.raises(UserError, match="more than 100 values"):
        load_yaml(text.replace("1, 2, 3", "1, 2, 3, 4"))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_project_configs_load_as_before(path: Path) -> None:
    text = path.read_text()
    assert load_yaml(text, path.name) == JSONARGPARSE_YAML(text)


VALUES = ["abc:", "a, b", "{a, b}", "1e3", "2020-01-01", "on", "[1, 2]", "x: 1", ".5", "1_000", "0x10", "~", "", "-",
          "[0.8, 0.98]", "[[1, 2], [3, 4]]", "{class_path: x, init_args: {a: 1}}", "'quoted'", "&a [1, 2]"]  # fmt: skip


@pytest.mark.parametrize("text", VALUES)
def test_option_values_load_as_before(text: str) -> None:
    assert load_yaml(text) == JSONARGPARSE_YAML(text)


@pytest.mark.parametrize("text", ["a: b: c", "[1, 2", "*undefined", "{a: 1", "\t- x", "&a [1]\n&a 2", ":", "&a:", "? "])
def test_text_that_is_not_yaml_raises_yamls_own_error(text: str) -> None:
    """jsonargparse catches YAMLError: an option value that is not YAML is then kept as a string."""
    with pytest.raises(yaml.YAMLError):
        load_yaml(text)


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, database=None)
@given(value=documents, flow=st.booleans())
def test_any_dumped_document_loads_as_before(value: object, flow: bool) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow)
    assert load_yaml(text) == JSONARGPARSE_YAML(text)


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.text(alphabet="[]{}&*ab:,- \n'\"#!|>", max_size=60))
def test_any_text_loads_as_before_or_fails_the_same_way(text: str) -> None:
    try:
        expected: object = JSONARGPARSE_YAML(text)
    except yaml.YAMLError as err:
        expected = type(err)
    except TypeError:  # jsonargparse's loader on a mapping whose one key is null ("&a:"): load_yaml says it is no YAML
        expected = yaml.YAMLError
    try:
        got: object = load_yaml(text)
    except yaml.YAMLError as err:
        got = type(err)
    except UserError as err:
        assert "recursive alias" in str(err), err  # jsonargparse's loader gives a list that contains itself
        return
    assert got == expected


@pytest.fixture
def registered() -> Iterator[None]:
    """``load_yaml`` as jsonargparse's YAML loader, as ``lit-linreg``'s main() registers it; restored afterwards."""
    set_loader("yaml", load_yaml, exceptions=(yaml.YAMLError,))
    yield
    set_loader("yaml", JSONARGPARSE_YAML, exceptions=(yaml.YAMLError,))


def test_through_jsonargparse(registered: None, tmp_path: Path) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--run_name", type=str | None)
    parser.add_argument("--x", type=list[float] | None)
    assert parser.parse_args(["--x", "[1, 2.5]", "--run_name", "a: b: c"]).as_dict() == {
        "config": None,
        "run_name": "a: b: c",  # not YAML: kept as the string it is, as before
        "x": [1.0, 2.5],
    }
    for text, words in BOMBS[:4]:
        bomb = tmp_path / "bomb.yaml"
        bomb.write_text(text)
        with pytest.raises(UserError) as refused:
            parser.parse_args(["--config", str(bomb)])
        assert str(refused.value).startswith("config file bomb.yaml line") and words in str(refused.value)


def test_main_prints_one_line_and_exits_2(registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--data.predict_x", LAUGHS.replace("\n", ", ").replace("run_name: ", "z: ").join("{}")])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'billion laughs'" in lines[0], lines
