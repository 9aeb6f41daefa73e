"""``lit-linreg export``: a checkpoint's ``forward`` (standardisation included) as a plain model file for other
runtimes, written only once the reloaded file gives the checkpoint's own predictions on its test split."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from lit_linreg.deploy import load_for_inference, parse_function_arguments, require_extra, resolve_checkpoint
from lit_linreg.deploy.model_io import held_out_rows
from lit_linreg.errors import UserError

Format = Literal["onnx", "torchscript", "exported"]
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported": ".pt2"}
RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torch.jit.load", "exported": "torch.export.load"}
TOLERANCE = 1e-6


def export(ckpt_path: str, format: Format = "onnx", out: str | None = None, config: str | None = None) -> None:
    """Export a checkpoint to ONNX (Lightning's to_onnx), TorchScript (to_torchscript) or torch.export (.pt2).

    The file takes float32 x of shape (rows, features) and includes the checkpoint's standardisation. It is written
    only after a parity check: the reloaded file must give the checkpoint's predictions on the test split to 1e-6.

    Args:
        ckpt_path: The checkpoint: last or best (of the --config's run, as for predict) or a .ckpt file.
        format: onnx (needs the export extra), torchscript (deprecated by PyTorch, kept for older runtimes) or
            exported (torch.export's ExportedProgram, saved as .pt2).
        out: Where to write the file (default: beside the checkpoint, e.g. last.onnx, last.torchscript.pt, last.pt2).
        config: The fit's config file, naming the run whose last/best checkpoint --ckpt_path means.
    """
    if format == "onnx":
        require_extra("export", ["onnx", "onnxruntime", "onnxscript"])
    path = Path(resolve_checkpoint(ckpt_path, config))
    task, _ = load_for_inference(str(path))
    default = path.with_name(path.stem + SUFFIXES[format])
    target = Path(out) if out else default
    if target.suffix == ".ckpt" or target.resolve() == path.resolve():
        raise UserError(
            f"--out {target} would overwrite a checkpoint; name the file to write, e.g. {default} (the default)"
        )
    try:
        if target.is_dir():
            raise UserError(f"--out {target} is a folder; name the file to write, e.g. {target / default.name}")
        if target.exists() and not target.is_file():  # e.g. /dev/null, which the final rename would replace
            raise UserError(f"--out {target} is no regular file (a device, pipe or socket); name a file to write")
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a name over 255 bytes, a parent that is a file
        raise UserError(f"cannot write --out {target} ({err.strerror}); choose another --out") from None

    in_features = int(task.hparams["in_features"])
    rows, source = held_out_rows(str(path))
    if rows is None:
        rows = torch.randn(256, in_features, generator=torch.Generator().manual_seed(0))
        if task.hparams["standardize"]:
            rows = rows * task.feature_std + task.feature_mean
        source = f"256 generated rows (the test split could not be rebuilt here: {source})"

    tmp = target.parent / f".lit-linreg-export.{secrets.token_hex(4)}{SUFFIXES[format]}"  # the usual permissions
    try:
        with _quiet():  # 2 example rows: a dimension of size 1 would be specialised, not kept dynamic
            run = EXPORTERS[format](task, tmp, torch.zeros(2, in_features))
        with torch.inference_mode():
            expected = task(rows)
            difference = (run(rows).reshape(expected.shape) - expected).abs().max().item()
        scale = max(1.0, expected.abs().max().item())
        if not difference <= TOLERANCE * scale:
            raise UserError(
                f"the {format} export of {path} does not reproduce the checkpoint: max |difference| {difference:.3e} "
                f"over {source} (tolerance {TOLERANCE * scale:.0e}); nothing was written to {target}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"lit-linreg export: {path} -> {target} ({format}: float32 x (rows, {in_features}) -> y_pred (rows, 1))")
    print(
        f"parity: {RUNTIMES[format]} vs the checkpoint on {source}: max |difference| {difference:.3e} "
        f"(tolerance {TOLERANCE * scale:.0e})",
        flush=True,
    )


ROWS = {"x": {0: torch.export.Dim("rows")}}  # any number of rows


def _to_onnx(task, path: Path, example: Tensor) -> Callable[[Tensor], Tensor]:
    import onnxruntime

    task.to_onnx(
        path,
        example,
        dynamo=True,
        input_names=["x"],
        output_names=["y_pred"],
        dynamic_shapes=ROWS,
        external_data=False,
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def _to_torchscript(task, path: Path, example: Tensor) -> Callable[[Tensor], Tensor]:
    # Traced: scripting would compile the forward's branches for buffers this model does not have.
    task.to_torchscript(path, method="trace", example_inputs=example)
    return torch.jit.load(str(path), map_location="cpu")


def _to_exported(task, path: Path, example: Tensor) -> Callable[[Tensor], Tensor]:
    torch.export.save(torch.export.export(task, (example,), dynamic_shapes=ROWS), path)
    return torch.export.load(str(path)).module()


EXPORTERS = {"onnx": _to_onnx, "torchscript": _to_torchscript, "exported": _to_exported}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters' progress lines, warnings and tracer hints out of the output (errors still raise)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def main(argv: list[str]) -> None:
    """``lit-linreg export [options]``: see :func:`export`."""
    export(**parse_function_arguments(export, "export", argv))


if __name__ == "__main__":
    main(sys.argv[1:])
