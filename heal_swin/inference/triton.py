"""The model repository layout, shared by ``heal-swin export`` (writes it) and ``heal-swin serve`` (reads it).

It is NVIDIA Triton's layout, so the same folder serves with Triton's onnxruntime backend::

    REPO/<name>/config.pbtxt        Triton model configuration (protobuf text format)
    REPO/<name>/model.json          our manifest (heal_swin.inference.manifest): classes, grid, ...
    REPO/<name>/1/model.onnx        version 1: the fp32 model (+ model.onnx.data for external weights)
    REPO/<name>/2/model.onnx        version 2: the int8 model (``heal-swin export --int8``)
    REPO/cameras/<camera>.json      registered calibrations (our service only; Triton refuses to start
                                    on a folder without a config.pbtxt unless models are loaded by
                                    name: ``--model-control-mode=explicit --load-model=NAME``)
    REPO/<name>_<camera>/           an end-to-end model of one camera (``heal-swin export --camera``):
                                    uint8 (B, H, W, 3) BGR frame in, mask / depth (B, H, W) out;
                                    platform onnxruntime_onnx, or with ``--triton-backend python``
                                    backend "python" and ``1/model.py`` running ``1/model.onnx``

Versions are the numeric subfolders; requests without a version get the highest one (Triton's
rule; ``version_policy: all`` makes Triton load every version, as our service does).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from heal_swin.inference.manifest import INT8_NAME, MANIFEST_NAME, ONNX_NAME, Manifest

__all__ = [
    "BACKENDS",
    "CONFIG_NAME",
    "PLATFORM",
    "PYTHON_MODEL_NAME",
    "end_to_end_config_text",
    "model_config_text",
    "old_layout",
    "parse_pbtxt",
    "reexport_hint",
    "version_folders",
]

CONFIG_NAME = "config.pbtxt"
PLATFORM = "onnxruntime_onnx"
PYTHON_MODEL_NAME = "model.py"
BACKENDS = ("onnxruntime", "python")
_DATATYPE = {"FP32": "TYPE_FP32", "UINT8": "TYPE_UINT8"}  # KServe v2 datatype -> Triton config data_type


def model_config_text(manifest: Manifest, max_batch_size: int = 8, max_queue_delay_us: int = 5000) -> str:
    """Triton's ``config.pbtxt`` for a model folder: dims without the batch dimension (``max_batch_size`` > 0)."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size: expected a positive integer, got {max_batch_size}")

    def tensor(name: str, shape: list[int]) -> str:
        dims = ", ".join(str(int(d)) for d in shape[1:])  # shape[0] is the dynamic batch (-1)
        return (
            f"  {{\n    name: {_quote(name)}\n    data_type: {_DATATYPE['FP32']}\n    dims: [ {dims} ]\n  }}"
        )

    return (
        f"# Triton model configuration written by heal-swin export; {MANIFEST_NAME} beside it has classes, grid and\n"
        f"# normalisation. Version 1 is fp32{', version 2 int8' if manifest.int8 else ''} (model.json 'model_versions').\n"
        f"name: {_quote(manifest.name)}\n"
        f"platform: {_quote(PLATFORM)}\n"
        f"max_batch_size: {int(max_batch_size)}\n"
        "version_policy: { all: { } }\n"
        f"input [\n{tensor(manifest.input_name, manifest.input_shape)}\n]\n"
        f"output [\n{tensor(manifest.output_name, manifest.output_shape)}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}\n"
    )


def end_to_end_config_text(
    manifest: Manifest, backend: str = "onnxruntime", max_batch_size: int = 8, max_queue_delay_us: int = 5000
) -> str:
    """``config.pbtxt`` of an end-to-end model (``manifest.end_to_end``): uint8 frame in, mask/depth out.

    ``backend="onnxruntime"``: platform onnxruntime_onnx (NGC Triton: onnxruntime or TensorRT backends);
    ``"python"``: Triton's Python backend running ``1/model.py`` on CPU (e.g. pytriton's tritonserver).
    """
    e2e = manifest.end_to_end
    if not e2e:
        raise ValueError(f"{manifest.name}: not an end-to-end model (manifest field 'end_to_end' is null)")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size: expected a positive integer, got {max_batch_size}")

    def tensor(t: dict[str, Any]) -> str:
        dims = ", ".join(str(int(d)) for d in t["shape"][1:])
        return f"  {{\n    name: {_quote(t['name'])}\n    data_type: {_DATATYPE[t['datatype']]}\n    dims: [ {dims} ]\n  }}"

    engine = f"platform: {_quote(PLATFORM)}\n" if backend == "onnxruntime" else 'backend: "python"\n'
    extra = (
        ""
        if backend == "onnxruntime"
        else (
            "instance_group [\n  {\n    kind: KIND_CPU\n    count: 1\n  }\n]\n"
            'parameters: {\n  key: "intra_op_threads"\n  value: { string_value: "0" }\n}\n'
        )
    )
    w, h = e2e["image_size"]
    return (
        f"# Triton model configuration written by heal-swin export --camera: the end-to-end model of camera\n"
        f"# {e2e['camera']} ({w}x{h}, BGR uint8 frames) around {e2e['sphere_model']}; {MANIFEST_NAME} beside it.\n"
        f"name: {_quote(manifest.name)}\n"
        f"{engine}"
        f"max_batch_size: {int(max_batch_size)}\n"
        f"input [\n{tensor(e2e['input'])}\n]\n"
        f"output [\n{tensor(e2e['output'])}\n]\n"
        f"{extra}"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}\n"
    )


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{}\[\]:,]|[^\s{}\[\]:,"#]+|\s+|.')


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Protobuf text format -> ``{field: [values]}`` (messages as nested dicts); ValueError if malformed.

    Enough to read back what :func:`model_config_text` writes (and the usual hand-written configs).
    """
    tokens: list[str] = []
    for m in _TOKEN.finditer(text):
        t = m.group(0)
        if t.isspace() or t.startswith("#"):
            continue
        if t == '"' or (len(t) == 1 and not re.fullmatch(r"[{}\[\]:,\w.+-]", t)):
            raise ValueError(
                f"config.pbtxt: cannot read at offset {m.start()}: {text[m.start() : m.start() + 20]!r}"
            )
        tokens.append(t)
    it = iter(tokens + ["<end>"])
    look = [next(it)]

    def take() -> str:
        t = look[0]
        look[0] = next(it, "<end>")
        return t

    def scalar(t: str) -> Any:
        if t.startswith('"'):
            return re.sub(r"\\(.)", r"\1", t[1:-1])
        if re.fullmatch(r"[-+]?\d+", t):
            return int(t)
        if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", t):
            return float(t)
        if t in ("true", "false"):
            return t == "true"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t):
            return t  # an enum name
        raise ValueError(f"config.pbtxt: unexpected {t!r}")

    def value() -> Any:
        t = take()
        if t == "{":
            return message("}")
        return scalar(t)

    def message(end: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        while look[0] != end:
            name = take()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"config.pbtxt: expected a field name, got {name!r}")
            if look[0] == ":":
                take()
            vals = out.setdefault(name, [])
            if look[0] == "[":
                take()
                while look[0] != "]":
                    vals.append(value())
                    if look[0] == ",":
                        take()
                take()
            else:
                vals.append(value())
        take()
        return out

    return message("<end>")


def version_folders(folder: Path) -> dict[int, Path]:
    """Numeric subfolders of a model folder: ``{version: path}`` (Triton's rule: no leading zeros or signs)."""
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        if p.is_dir() and p.name.isdigit() and p.name == str(int(p.name)) and int(p.name) > 0:
            out[int(p.name)] = p
    return dict(sorted(out.items()))


def old_layout(folder: Path) -> bool:
    """A model folder written before the Triton layout (``model.onnx`` beside ``model.json``, no versions)."""
    return ((folder / ONNX_NAME).is_file() or (folder / INT8_NAME).is_file()) and not version_folders(folder)


def reexport_hint(folder: Path) -> str:
    """The command that rewrites ``folder`` in the current layout."""
    return f"heal-swin export --checkpoint MODEL.safetensors --out {folder}" + (
        " --int8" if (folder / INT8_NAME).is_file() else ""
    )
