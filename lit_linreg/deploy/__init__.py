"""Using a trained model outside training: ``lit-linreg serve`` (HTTP, on LitServe) and ``lit-linreg export`` (ONNX,
TorchScript, torch.export).

``load_for_inference(ckpt_path, config=None)`` gives the task (eval mode, CPU) and its feature names, resolving
``last``/``best`` and checking the file exactly as ``lit-linreg predict`` does. The commands' optional packages
(the ``serve`` and ``export`` extras) are imported only when a command runs.
"""

from lit_linreg.deploy.model_io import load_for_inference, resolve_checkpoint

__all__ = ["load_for_inference", "resolve_checkpoint"]
