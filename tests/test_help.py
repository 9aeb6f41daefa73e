"""``--help`` tells the truth: every option has help text, no description is cut off, none contradicts lit-linreg."""

from __future__ import annotations

import re

import pytest

from lit_linreg.cli import LitLinregCLI
from lit_linreg.launch import COMMANDS, TRAINER_COMMANDS

from .bad_inputs import error_line
from .helpers import CONFIGS, run

# An option's line, or a linked argument's (``num_features_of(data) --> model.in_features``).
ENTRY = re.compile(r"^  (-[^\s,]+|\w+\([\w, ]*\) --> \S+)")
HELPS = [
    *([command] for command in LitLinregCLI.subcommands()),
    *([command] for command in COMMANDS),
    ["fit", "--data.help", "SyntheticRegressionData"],
    ["fit", "--data.help", "CSVRegressionData"],
]


def help_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(*args, *([] if "--data.help" in args else ["--help"]))
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """Each option (or linked argument) of an argparse help text -> its description, on one line."""
    lines = text.splitlines()
    found = {}
    for i, line in enumerate(lines):
        entry = ENTRY.match(line)
        if entry is None:
            continue
        inline = re.match(r"^  \S.*?\S {2,}(\S.*)$", line)  # the description begins on the option's line
        description = [inline.group(1)] if inline else []
        for more in lines[i + 1 :]:
            if not re.match(r"^ {6,}\S", more):
                break
            description.append(more.strip())
        found[entry.group(1)] = " ".join(description)
    return found


@pytest.mark.parametrize("args", HELPS, ids=lambda args: " ".join(args) or "lit-linreg")
def test_every_option_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, *args)
    options = entries(text)
    assert len(options) >= 3
    # jsonargparse prints "(type: ..., default: ...)" even where an option has no help of its own.
    assert [name for name, description in options.items() if not description or description.startswith("(")] == []
    assert "lacks type and help" not in text


def test_top_level_help_is_not_cut_mid_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys)
    assert list(TRAINER_COMMANDS) == list(LitLinregCLI.subcommands())
    helps = {**TRAINER_COMMANDS, **{name: help for name, (_, help) in COMMANDS.items()}}
    for name, help in helps.items():  # the full text, one command a line
        found = re.search(rf"^  lit-linreg {name} +(\S.*(?:\n {{24}}\S.*)*)", text, re.MULTILINE)
        assert found is not None and " ".join(found.group(1).split()) == help


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_no_option_that_lit_linreg_decides_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    options = entries(help_text(capsys, command))
    assert "--ckpt_path" in options and "--weights_only" in options  # Lightning's own, with its own help
    assert "--verbose" not in options and "--return_predictions" not in options  # --verbose is lit-linreg's


def test_weights_only_false_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, "fit", "--config", CONFIGS / "base.yaml", "--weights_only", "false")
    assert line == (
        "lit-linreg: error: --weights_only false is refused: lit-linreg loads every checkpoint with weights_only=True, "
        "so that a checkpoint cannot run code; drop the option"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["theory", "--steps", "1.5"],
            "Parser key \"steps\": Expected a <class 'int'>. Got value: 1.5; see `lit-linreg theory --help`",
        ),
        (["theory", "--w_range", "-1"], "argument --w_range: expected 2 arguments"),
        (["theory", "--bogus", "1"], "unrecognized arguments: --bogus 1; see `lit-linreg theory --help`"),
        (["lr-sweep", "--lrs", "[0.1, -1]"], '--lrs: expected positive numbers like "[0.001, 0.01, 0.1]", got'),
        (["lr-sweep", "--lrs=[.inf]"], "--lrs: expected positive numbers like \"[0.001, 0.01, 0.1]\", got '[.inf]'"),
        (["lr-sweep", "--lrs", "abc"], "--lrs: expected positive numbers like \"[0.001, 0.01, 0.1]\", got 'abc'"),
        (["lr-sweep", "--out"], "argument --out: expected one argument; see `lit-linreg lr-sweep --help`"),
        (
            ["make-data", "--rows", "x"],
            "Parser key \"rows\": Expected a <class 'int'>. Got value: x; see `lit-linreg make-data --help`",
        ),
        (["make-data", "--rows", "0"], "--rows and --new_rows must be > 0, got 0, 10"),
        (["make-data", "--outliers", "2"], "--outliers must be a fraction between 0 and 1, got 2.0"),
    ],
)
def test_extra_commands_report_bad_options_in_one_line(args: list[str], message: str, capsys) -> None:
    assert message in error_line(capsys, *args)
