"""An end-to-end ONNX graph for one camera: raw fisheye frame in, fisheye-sized prediction out.

The sphere model's graph is wrapped between two precomputed samplings, baked in as initializers
(standard ONNX ops only: Gather, GatherElements, Cast, Mul, Add, Round, Clip, Transpose, ArgMax, Exp and
shape plumbing: Shape, Slice, Concat, Expand, Reshape):

- **in**: ``image`` uint8 ``(B, H, W, 3)`` BGR -> planes ``(B, 3, H*W)`` in the model's channel order
  -> K gathers at the taps' indices, weighted and summed one tap after the other in float32 (the order of the
  numpy path, so the sums round identically), rounded half-to-even and clipped to 0..255 (what a
  uint8 ``to_sphere`` returns) -> normalised through a 256-entry lookup table per channel (the table
  holds ``normalise_pixels`` of every uint8 value, so the graph cannot round differently; pixels the
  grid does not see read a row of zeros) -> ``(B, 3, N)``, the sphere model's input.
- **out**: segmentation: ArgMax over classes (first maximum, as ``np.argmax``) -> uint8 -> gathered
  at each fisheye pixel's grid pixel -> ``mask`` uint8 ``(B, H, W)``, 255 outside the grid's
  footprint. Depth: channel 0 decoded in float64 (``exp(clip(z * s + m, -50, 50))``, as
  ``decode_depth``) -> float32 -> gathered -> ``depth`` float32 ``(B, H, W)`` metres, NaN outside.

The graph is generic over K taps per grid pixel (:class:`Taps`: indices and weights ``(N, K)``):
bilinear is K = 4, an area resampling any K. H and W are fixed, the batch is dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEPTH_OUTPUT",
    "IMAGE_INPUT",
    "MASK_OUTPUT",
    "Taps",
    "build_end_to_end",
    "build_sphere_input",
    "normalisation_lut",
    "pipeline_taps",
    "taps_from_maps",
]

IMAGE_INPUT = "image"
MASK_OUTPUT = "mask"
DEPTH_OUTPUT = "depth"
NO_CLASS = 255
_P = "e2e/"  # prefix of every name this module adds (the model's own names never start with it)


@dataclass(frozen=True)
class Taps:
    """Sampling of an (H, W, C) image at N grid pixels.

    Attributes:
        index: (N, K) int64 positions in the image flattened to (H*W, C) (``v * W + u``).
        weight: (N, K) float32; 0 for unused or off-image taps.
        valid: (N,) bool, the grid pixels that see the image (set to 0 after normalising).
    """

    index: np.ndarray
    weight: np.ndarray
    valid: np.ndarray

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> (N, C) uint8: the numpy reference of the graph's sampling (taps in order)."""
        flat = image.reshape(image.shape[0] * image.shape[1], -1)
        acc = np.zeros((self.index.shape[0], flat.shape[1]), np.float32)
        for k in range(self.k):
            acc += self.weight[:, k, None] * np.take(flat, self.index[:, k], axis=0)
        return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def taps_from_maps(map_u: np.ndarray, map_v: np.ndarray, valid: np.ndarray, width: int, height: int) -> Taps:
    """K = 4 bilinear taps at float32 image coordinates ``(map_u, map_v)`` (any shape with N entries).

    Off-image taps get weight 0 (``cv2.remap``'s constant-0 border); ``valid`` marks the grid pixels that see the image.
    """
    u = np.asarray(map_u, np.float32).reshape(-1)
    v = np.asarray(map_v, np.float32).reshape(-1)
    x0, y0 = np.floor(u), np.floor(v)
    fx, fy = u - x0, v - y0  # float32, exact
    xi, yi = x0.astype(np.int64), y0.astype(np.int64)
    index, weight = [], []
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xx, yy = xi + dx, yi + dy
        inside = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
        index.append(np.where(inside, yy * width + xx, 0))
        weight.append(np.where(inside, w, 0).astype(np.float32))
    return Taps(np.stack(index, 1), np.stack(weight, 1), np.asarray(valid, bool).reshape(-1))


def pipeline_taps(proj: Any, mode: str = "bilinear") -> Taps:
    """The taps of the projector's ``mode`` sampling to the sphere: what ``heal_swin.inference.processing`` feeds models.

    A projector that exposes its sampling as taps (``proj.taps(mode)``) gives them directly; otherwise
    the bilinear taps are built from its forward remap coordinates.
    """
    if hasattr(proj, "taps"):
        t = proj.taps(mode)
        return Taps(
            np.asarray(t.index, np.int64), np.asarray(t.weight, np.float32), np.asarray(t.valid, bool)
        )
    if mode != "bilinear":
        raise ValueError(f"mode: this projector offers only 'bilinear' sampling maps, got {mode!r}")
    maps = proj.forward_maps
    return taps_from_maps(maps.map_u, maps.map_v, maps.valid, proj.camera.width, proj.camera.height)


def normalisation_lut(mean: Sequence[float], std: Sequence[float], scale: float) -> np.ndarray:
    """(3, 256) float32: ``normalise_pixels`` of every uint8 value, per model channel (same float32 ops)."""
    x = np.broadcast_to(np.arange(256, dtype=np.uint8), (3, 256)).astype(np.float32) * np.float32(scale)
    x -= np.asarray(mean, np.float32)[:, None]
    x /= np.asarray(std, np.float32)[:, None]
    return np.ascontiguousarray(x, np.float32)


class _Graph:
    """Nodes and initializers with prefixed, unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), _P + name))  # keeps 0-d scalars
        return _P + name

    def op(self, op: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = out or f"{_P}{op.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=f"{_P}{op}_{self._n}", **attrs))
        return out


def _sample_in(
    g: _Graph, taps: Taps, image: str, hw: int, lut: np.ndarray, src_channels: Sequence[int], out: str
) -> None:
    """image (B, H, W, 3) uint8 -> ``out`` (B, 3, N) float32: the model's normalised sphere input.

    Planar from the start (one transpose of the frame, channels in the model's order), so each tap is
    one GatherElements and the weights (N,) broadcast over the trailing axis: 2x faster in
    onnxruntime than gathering (B, N, 3) pixels and weighting them with (N, 1).
    """
    from onnx import TensorProto

    n = int(taps.index.shape[0])
    flat = g.op("Reshape", [image, g.const("image_shape", np.array([-1, hw, 3], np.int64))])
    planes = g.op(
        "Gather",
        [g.op("Transpose", [flat], perm=[0, 2, 1]), g.const("channels", np.asarray(src_channels, np.int64))],
        axis=1,
    )
    batch = g.op(
        "Slice",
        [
            g.op("Shape", [image]),
            g.const("b0", np.array([0], np.int64)),
            g.const("b1", np.array([1], np.int64)),
        ],
    )
    shape = g.op("Concat", [batch, g.const("planes_n", np.array([3, n], np.int64))], axis=0)
    acc = None
    for k in range(taps.k):  # one tap at a time: the float32 sums round as in the numpy path
        index = g.op(
            "Expand", [g.const(f"tap{k}_index", taps.index[None, None, :, k].astype(np.int64)), shape]
        )
        px = g.op("Cast", [g.op("GatherElements", [planes, index], axis=2)], to=TensorProto.FLOAT)
        term = g.op("Mul", [px, g.const(f"tap{k}_weight", taps.weight[:, k].astype(np.float32))])
        acc = term if acc is None else g.op("Add", [acc, term])
    u8 = g.op(
        "Clip",
        [
            g.op("Round", [acc]),
            g.const("zero", np.array(0, np.float32)),
            g.const("u8max", np.array(255, np.float32)),
        ],
    )
    # Table rows: channel c at c * 256, and 256 zeros at 768 for the pixels the grid does not see
    # (the pipeline sets them to +0.0 after normalising): one Add selects both, no Where.
    offsets = np.where(taps.valid[None, :], np.arange(3, dtype=np.int64)[:, None] * 256, 768)
    lut_index = g.op("Add", [g.op("Cast", [u8], to=TensorProto.INT64), g.const("lut_offset", offsets)])
    table = np.concatenate([lut.reshape(-1), np.zeros(256, np.float32)])
    g.op("Gather", [g.const("lut", table), lut_index], out, axis=0)


def _sample_out(
    g: _Graph, values: str, npix: int, nearest: np.ndarray, fill: np.ndarray, shape: tuple[int, int], out: str
) -> None:
    """values (B, N) -> ``out`` (B, H, W): each fisheye pixel's grid pixel, ``fill`` outside the footprint.

    ``fill`` is appended as value N, where the pixels outside the footprint point; GatherElements
    (indices expanded over the batch) is several times faster in onnxruntime than Gather on axis 1.
    """
    flat = nearest.reshape(-1)
    n = g.op("Shape", [values])
    batch = g.op("Slice", [n, g.const("s0", np.array([0], np.int64)), g.const("s1", np.array([1], np.int64))])
    column = g.op(
        "Expand",
        [
            g.const("fill", fill.reshape(1, 1)),
            g.op("Concat", [batch, g.const("one", np.array([1], np.int64))], axis=0),
        ],
    )
    padded = g.op("Concat", [values, column], axis=1)
    index = np.where(flat >= 0, flat, npix).astype(np.int64)[None]
    wide = g.op(
        "Expand",
        [
            g.const("nearest", index),
            g.op("Concat", [batch, g.const("hw", np.array([flat.size], np.int64))], axis=0),
        ],
    )
    picked = g.op("GatherElements", [padded, wide], axis=1)
    g.op("Reshape", [picked, g.const("out_shape", np.array([-1, *shape], np.int64))], out)


def _model(nodes: list[Any], inits: list[Any], inputs: list[Any], outputs: list[Any], opset: int) -> Any:
    from onnx import helper

    graph = helper.make_graph(nodes, "heal_swin_sampling", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="heal-swin")


def build_sphere_input(
    taps: Taps,
    image_size: tuple[int, int],
    *,
    mean,
    std,
    scale: float,
    reverse_channels: bool,
    opset: int = 18,
) -> Any:
    """Only the input half of the end-to-end graph: ``image`` uint8 (B, H, W, 3) -> ``input`` (B, 3, N) float32.

    The same nodes :func:`build_end_to_end` puts in front of the model (``image_size = (W, H)``).
    """
    from onnx import TensorProto, helper

    w, h = (int(s) for s in image_size)
    g = _Graph()
    _sample_in(
        g,
        taps,
        IMAGE_INPUT,
        h * w,
        normalisation_lut(mean, std, scale),
        [2, 1, 0] if reverse_channels else [0, 1, 2],
        "input",
    )
    n = int(taps.index.shape[0])
    return _model(
        g.nodes, g.inits,
        [helper.make_tensor_value_info(IMAGE_INPUT, TensorProto.UINT8, ["batch", h, w, 3])],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, n])],
        opset,
    )  # fmt: skip


def build_end_to_end(
    sphere_model: Any,
    taps: Taps,
    nearest: np.ndarray,
    *,
    task: str,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float,
    reverse_channels: bool,
    depth: dict[str, float] | None = None,
    input_name: str = "input",
    output_name: str = "output",
) -> Any:
    """Wrap the sphere model (``onnx.ModelProto``, ``(B, 3, N) -> (B, C, N)``) into the end-to-end graph.

    Args:
        taps: the image -> grid sampling (N rows).
        nearest: (H, W) int grid pixel of each fisheye pixel, -1 outside the grid (``backward_maps().nearest``).
        task: ``segmentation`` (output ``mask`` uint8) or ``depth`` (output ``depth`` float32 metres;
            ``depth = {"log_mean", "log_std"}``).
        mean, std, scale, reverse_channels: the manifest's normalisation (``normalise_pixels``'s arguments).
    Returns a new ``onnx.ModelProto``: ``image`` uint8 (B, H, W, 3) -> ``mask`` / ``depth`` (B, H, W).
    """
    import onnx
    from onnx import TensorProto, helper

    h, w = (int(s) for s in nearest.shape)
    model = onnx.ModelProto()
    model.CopyFrom(sphere_model)
    graph = model.graph
    if len(graph.input) != 1 or graph.input[0].name != input_name or graph.output[0].name != output_name:
        raise ValueError(f"sphere model: expected one input {input_name!r} and output {output_name!r}")
    n = graph.input[0].type.tensor_type.shape.dim[2].dim_value
    if n != taps.index.shape[0]:
        raise ValueError(f"taps: expected {n} rows (the model's grid), got {taps.index.shape[0]}")
    g = _Graph()
    lut = normalisation_lut(mean, std, scale)
    _sample_in(g, taps, IMAGE_INPUT, h * w, lut, [2, 1, 0] if reverse_channels else [0, 1, 2], input_name)
    pre_nodes, pre_inits = g.nodes, g.inits
    g.nodes, g.inits = [], []
    if task == "segmentation":
        classes = g.op(
            "Cast",
            [g.op("ArgMax", [output_name], axis=1, keepdims=0, select_last_index=0)],
            to=TensorProto.UINT8,
        )
        _sample_out(g, classes, n, nearest, np.array(NO_CLASS, np.uint8), (h, w), MASK_OUTPUT)
        out_info = helper.make_tensor_value_info(MASK_OUTPUT, TensorProto.UINT8, ["batch", h, w])
    elif task == "depth":
        if depth is None:
            raise ValueError("depth: a depth model needs {'log_mean', 'log_std'}")
        z = g.op(
            "Cast",
            [g.op("Gather", [output_name, g.const("channel0", np.array(0, np.int64))], axis=1)],
            to=TensorProto.DOUBLE,
        )
        zz = g.op(
            "Add",
            [
                g.op("Mul", [z, g.const("log_std", np.array(depth["log_std"], np.float64))]),
                g.const("log_mean", np.array(depth["log_mean"], np.float64)),
            ],
        )
        zc = g.op(
            "Clip", [zz, g.const("lo", np.array(-50, np.float64)), g.const("hi", np.array(50, np.float64))]
        )
        metres = g.op("Cast", [g.op("Exp", [zc])], to=TensorProto.FLOAT)
        _sample_out(g, metres, n, nearest, np.array(np.nan, np.float32), (h, w), DEPTH_OUTPUT)
        out_info = helper.make_tensor_value_info(DEPTH_OUTPUT, TensorProto.FLOAT, ["batch", h, w])
    else:
        raise ValueError(f"task: expected 'segmentation' or 'depth', got {task!r}")
    model_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(pre_nodes + model_nodes + g.nodes)
    graph.initializer.extend(pre_inits + g.inits)
    graph.value_info.append(graph.input[0])  # the model's input is now an intermediate tensor
    graph.value_info.append(graph.output[0])
    del graph.input[:]
    del graph.output[:]
    graph.input.append(helper.make_tensor_value_info(IMAGE_INPUT, TensorProto.UINT8, ["batch", h, w, 3]))
    graph.output.append(out_info)
    graph.name = f"{graph.name or 'model'}_end_to_end"
    return model
