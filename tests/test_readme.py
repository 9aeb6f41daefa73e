"""The README cannot drift: every ```console block in it is a transcript, and this test replays them all.

A transcript is ``$ command`` lines, each followed by what that command prints. The blocks run in README order in
one directory that starts as a fresh clone does (``configs/`` and nothing else), the way a newcomer follows the
README: ``lit-linreg ...`` in-process through ``lit_linreg.launch.main`` (what the installed command runs; its stdout
and stderr, without the lines Lightning prints through its loggers), ``lit-linreg serve`` as a real server on a free
port (the README's 8000 stands for it), and every other command (``curl``, ``printf``, ``head``, ``sed``) in bash. What
a command prints is then compared with what the README shows, line by line:

- ``...`` on a line of its own stands for any number of lines;
- a number is compared at the precision shown: the printed number, rounded to the decimals the README shows, must
  be the README's (where a number depends on the machine the README shows only the digits every machine reproduces,
  and says so);
- the rest must be equal, up to runs of spaces (so a table shown with fewer digits stays aligned).

Every other fenced block names its language (bash, python, yaml, text), so no output block goes unchecked.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
import torch

from lit_linreg.launch import main

from .deploy_helpers import Server
from .helpers import ROOT

README = ROOT / "README.md"
README_PORT = "8000"  # the port the README's serve and curl lines show
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(),
    reason="the README shows what the commands print on a machine without a GPU (CPUAccelerator)",
)


@dataclass
class Command:
    line: int  # in README.md
    text: str  # as shown, after "$ "
    expected: list[str] = field(default_factory=list)
    actual: list[str] | None = None  # None: not run (yet)


@dataclass
class Block:
    line: int
    lang: str
    text: str
    commands: list[Command] = field(default_factory=list)


def fenced_blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of ``markdown``, indented ones (in a list item) included."""
    blocks, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        indent, start = len(opening.group(1)), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        blocks.append(Block(start + 1, opening.group(2), "\n".join(body)))
        i += 1
    return blocks


def transcripts(markdown: str) -> list[Block]:
    """The ```console blocks, each split into its commands and the lines shown after each."""
    blocks = [block for block in fenced_blocks(markdown) if block.lang == "console"]
    for block in blocks:
        for offset, text in enumerate(block.text.splitlines(), start=1):
            if text.startswith("$ "):
                block.commands.append(Command(block.line + offset, text[2:]))
            else:
                assert block.commands, f"README.md line {block.line + offset}: output before any `$ command`"
                block.commands[-1].expected.append(text)
    return blocks


def _tokens(line: str) -> list[str]:
    """``line`` as numbers and the text between them, runs of spaces collapsed."""
    parts = NUMBER.split(" ".join(line.split()))
    numbers = NUMBER.findall(" ".join(line.split()))
    tokens = [parts[0]]
    for number, text in zip(numbers, parts[1:]):
        tokens += [number, text]
    return tokens


def _same_number(shown: str, printed: str) -> bool:
    if "." not in shown or "e" in shown or "e" in printed:
        return shown == printed
    decimals = len(shown.partition(".")[2])
    if "." not in printed or len(printed.partition(".")[2]) < decimals:
        return False  # the README cannot show more digits than the command prints
    return Decimal(printed).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN) == Decimal(shown)


def line_matches(shown: str, printed: str) -> bool:
    expected, actual = _tokens(shown), _tokens(printed)
    if len(expected) != len(actual):
        return False
    return all(
        _same_number(e, a) if i % 2 else e.strip() == a.strip() for i, (e, a) in enumerate(zip(expected, actual))
    )


def output_matches(shown: list[str], printed: list[str]) -> bool:
    """Whether ``printed`` is ``shown``, line by line, where a ``...`` line stands for any number of lines."""
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(shown):
                memo[i, j] = j == len(printed)
            elif shown[i].strip() == "...":
                memo[i, j] = match(i + 1, j) or (j < len(printed) and match(i, j + 1))
            else:
                memo[i, j] = j < len(printed) and line_matches(shown[i], printed[j]) and match(i + 1, j + 1)
        return memo[i, j]

    return match(0, 0)


class Replay:
    """Runs the README's commands in order in ``folder``, keeping a started server for the curl commands."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server: Server | None = None

    def run(self, command: Command) -> list[str]:
        args = shlex.split(command.text, comments=True)
        if Path(args[0]).name == "lit-linreg" and args[1:2] == ["serve"]:
            return self._serve(args[2:])
        if Path(args[0]).name == "lit-linreg":
            return self._in_process(args[1:])
        return self._shell(command.text)

    def _in_process(self, args: list[str]) -> list[str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(args)
            except SystemExit:
                pass  # the transcript shows the output, not the exit status
        return out.getvalue().splitlines()

    def _serve(self, args: list[str]) -> list[str]:
        assert self.server is None, "the README starts a second server"
        at = args.index("--ckpt_path")
        ckpt, rest = args[at + 1], args[:at] + args[at + 2 :]
        self.server = Server(Path(ckpt), self.folder, *rest)
        return [line.replace(f":{self.server.port}", f":{README_PORT}") for line in self.server.output().splitlines()]

    def _shell(self, text: str) -> list[str]:
        executable = shlex.split(text)[0]
        if shutil.which(executable) is None:
            pytest.skip(f"`{executable}` is not installed here")
        if self.server is not None:
            text = text.replace(f":{README_PORT}/", f":{self.server.port}/")
        result = subprocess.run(
            ["bash", "-c", text], cwd=self.folder, capture_output=True, text=True, timeout=60, check=False
        )
        return (result.stdout + result.stderr).splitlines()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> list[Block]:
    """Every transcript of the README, run in order in a fresh directory holding a copy of ``configs/``."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", folder / "configs")
    blocks = transcripts(README.read_text(encoding="utf-8"))
    replay = Replay(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr("sys.argv", ["lit-linreg"])
        patch.delenv("LIT_LINREG_VERBOSE", raising=False)
        try:
            for block in blocks:
                for command in block.commands:
                    command.actual = replay.run(command)
        finally:
            replay.close()
    return blocks


COMMANDS = [command for block in transcripts(README.read_text(encoding="utf-8")) for command in block.commands]


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[f"line {c.line}: {c.text[:70]}" for c in COMMANDS])
def test_the_readme_shows_what_the_command_prints(replayed: list[Block], index: int) -> None:
    command = [command for block in replayed for command in block.commands][index]
    assert command.actual is not None
    shown, printed = "\n".join(command.expected), "\n".join(command.actual)
    if not output_matches(command.expected, command.actual):
        pytest.fail(
            f"README.md line {command.line}: `{command.text}` printed\n{printed}\n\nbut the README shows\n{shown}"
        )


def test_every_fenced_block_names_its_language() -> None:
    """An output block is a ```console transcript, which the test above replays; any other block says what it is,
    so none can show an output that nothing checks."""
    unnamed = [block.line for block in fenced_blocks(README.read_text(encoding="utf-8")) if not block.lang]
    assert not unnamed, f"README.md lines {unnamed}: name the block's language (console for an output)"
    assert len(COMMANDS) >= 20


def test_numbers_are_compared_at_the_precision_shown() -> None:
    assert line_matches("learned | [0.69, -0.200] | 0.31", "learned | [0.6876, -0.2000] |   0.3091")
    assert not line_matches("learned | [0.69, -0.200] | 0.31", "learned | [0.6849, -0.2000] | 0.3091")
    assert not line_matches("0.6954", "0.695")  # more digits shown than printed
    assert not line_matches("weight 0.6954", "weight 0.6954, bias 0.2998")
    assert not line_matches("4.92e-11", "4.93e-11") and line_matches("epoch 349", "epoch   349")
    assert output_matches(["a", "...", "z"], ["a", "b", "c", "z"]) and output_matches(["a", "...", "z"], ["a", "z"])
    assert not output_matches(["a", "z"], ["a", "b", "z"]) and not output_matches(["a"], ["a", "b"])
