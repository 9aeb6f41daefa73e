"""Start-up: ``lit-linreg --help`` and a mistyped command answer without torch or Lightning, ``import lit_linreg`` is
light, and Ctrl-C or SIGTERM while a command still starts ends in one line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lit_linreg
from lit_linreg import launch

from .helpers import CONFIGS

HEAVY = {"torch", "lightning", "matplotlib", "jsonargparse", "numpy", "tqdm"}


def imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``python -X importtime -m lit_linreg <args>``, and every module it imported (``-X importtime``'s stderr)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lit_linreg", *args], capture_output=True, text=True, timeout=120
    )
    modules = set(re.findall(r"^import time: +\d+ \| +\d+ \| +(\S+)$", result.stderr, re.MULTILINE))
    result.stderr = re.sub(r"^import time: .*\n", "", result.stderr, flags=re.MULTILINE)
    return result, modules


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_top_level_help_imports_neither_torch_nor_lightning(option: str) -> None:
    result, modules = imported(option)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: lit-linreg <command> [options]\n")
    for name in [*launch.TRAINER_COMMANDS, *launch.COMMANDS]:
        assert f"\n  lit-linreg {name} " in result.stdout
    assert "lit_linreg.launch" in modules and {m.partition(".")[0] for m in modules}.isdisjoint(HEAVY)


@pytest.mark.parametrize(
    ("args", "given"), [(["fitt", "--config", "base.yaml"], "unknown command 'fitt'"), ([], "no command given")]
)
def test_a_missing_or_unknown_command_is_one_line_without_torch(args: list[str], given: str) -> None:
    result, modules = imported(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"lit-linreg: error: {given}: start with one of fit, validate, test, predict, theory, lr-sweep, make-data, "
        "serve, export, e.g. lit-linreg fit --config configs/base.yaml (lit-linreg --help describes each)\n"
    )
    assert "lit_linreg.launch" in modules and {m.partition(".")[0] for m in modules}.isdisjoint(HEAVY)


def test_import_lit_linreg_is_light_and_its_names_resolve_on_use() -> None:
    code = "import sys, lit_linreg; print(*sorted({m.partition('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "lit_linreg" in loaded.stdout.split() and HEAVY.isdisjoint(loaded.stdout.split())
    from lit_linreg.checkpoints import load_task
    from lit_linreg.task import LinearRegressionTask

    assert lit_linreg.LinearRegressionTask is LinearRegressionTask and lit_linreg.load_task is load_task
    namespace: dict[str, object] = {}
    exec("from lit_linreg import *", namespace)
    assert sorted(namespace.keys() - {"__builtins__"}) == sorted(lit_linreg.__all__)
    assert set(lit_linreg.__all__) <= set(dir(lit_linreg))
    with pytest.raises(AttributeError, match="has no attribute 'Trainer'"):
        lit_linreg.Trainer  # noqa: B018


def test_verbose_still_shows_a_mistyped_commands_traceback() -> None:
    before = {number: signal.getsignal(number) for number in launch.SIGNALS}
    with pytest.raises(lit_linreg.UserError, match="unknown command 'fitt'"):
        launch.main(["--verbose", "fitt"])
    assert {number: signal.getsignal(number) for number in launch.SIGNALS} == before  # handed back as they were


def catches(pid: int, number: int) -> bool:
    """Whether process ``pid`` has a handler for signal ``number`` (Linux: the SigCgt mask in /proc/<pid>/status)."""
    mask = re.search(r"^SigCgt:\s*([0-9a-f]+)$", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return mask is not None and bool(int(mask.group(1), 16) >> (number - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads a process's signal handlers from /proc")
@pytest.mark.parametrize("delay", [0.2, 1.0])
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_ends_in_one_line(number: signal.Signals, delay: float) -> None:
    """The signal arrives ``delay`` seconds after the launcher's handlers are in place, while ``lit-linreg fit``
    still imports torch and Lightning (seconds)."""
    if signal.getsignal(number) is signal.SIG_IGN:
        pytest.skip(f"{number.name} is ignored in this test run (a background job), so lit-linreg ignores it too")
    with subprocess.Popen(
        [sys.executable, "-m", "lit_linreg", "fit", "--config", str(CONFIGS / "base.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            deadline = time.monotonic() + 60
            while not catches(child.pid, signal.SIGTERM):  # the launcher's handlers are in place
                assert child.poll() is None and time.monotonic() < deadline, child.communicate()
                time.sleep(0.01)
            time.sleep(delay)
            child.send_signal(number)
            out, err = child.communicate(timeout=120)
        finally:
            child.kill()
    assert (child.returncode, out, err) == (128 + number, "", f"lit-linreg: error: {launch.SIGNALS[number]}\n")
