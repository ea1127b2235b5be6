"""ONNX export (dynamo, dynamic batch) and onnxruntime parity checks for any model of the suite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["ParityError", "check_parity", "export_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"


class ParityError(AssertionError):
    """onnxruntime's output differs from torch's beyond the tolerance."""


def export_onnx(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | Path,
    dynamic_batch: bool = True,
    opset: int | None = None,
) -> Path:
    """Export ``model`` (one tensor in, one tensor out) to ``path`` with the dynamo exporter.

    The model is exported in eval mode with gradients off: the dynamo exporter fails on
    ``scaled_dot_product_attention`` with trainable parameters otherwise. The batch dimension is
    dynamic unless ``dynamic_batch=False``. Weights may land in ``path + ".data"`` next to it.
    Returns the path of the ``.onnx`` file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.eval().requires_grad_(False)
    try:
        dynamic_shapes = None
        if dynamic_batch:
            dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},)
        kwargs = {} if opset is None else {"opset_version": opset}
        with torch.no_grad():
            program = torch.onnx.export(
                model,
                (example_input,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=dynamic_shapes,
                external_data=True,
                **kwargs,
            )
        program.save(str(path))
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    return path


def check_parity(
    model: nn.Module,
    onnx_path: str | Path,
    inputs: Sequence[torch.Tensor] | torch.Tensor,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    raise_on_mismatch: bool = True,
) -> dict[str, float]:
    """Run ``inputs`` through torch (eval) and onnxruntime (CPU) and compare.

    Returns ``{"max_abs": ..., "max_rel": ...}`` over all inputs (``max_rel`` relative to
    ``|torch| + atol``); raises :class:`ParityError` when ``np.allclose(rtol, atol)`` fails.
    """
    import onnxruntime as ort

    if isinstance(inputs, torch.Tensor):
        inputs = [inputs]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    was_training = model.training
    model.eval()
    max_abs = max_rel = 0.0
    ok = True
    try:
        for x in inputs:
            with torch.no_grad():
                ref = model(x).detach().cpu().numpy()
            got = sess.run(None, {name: x.detach().cpu().numpy()})[0]
            if got.shape != ref.shape:
                raise ParityError(f"onnxruntime output shape {got.shape} != torch {ref.shape}")
            diff = np.abs(got - ref)
            max_abs = max(max_abs, float(diff.max(initial=0.0)))
            max_rel = max(max_rel, float((diff / (np.abs(ref) + atol)).max(initial=0.0)))
            ok &= bool(np.allclose(got, ref, rtol=rtol, atol=atol))
    finally:
        model.train(was_training)
    result = {"max_abs": max_abs, "max_rel": max_rel}
    if raise_on_mismatch and not ok:
        raise ParityError(f"onnxruntime differs from torch beyond rtol={rtol}, atol={atol}: {result}")
    return result
