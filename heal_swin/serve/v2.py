"""The KServe v2 / Open Inference Protocol wire format: request parsing and response encoding (no FastAPI).

A request body is a JSON header, optionally followed by raw tensor bytes (Triton's binary tensor
extension): the header's length is the ``Inference-Header-Content-Length`` request header, and each
binary input says its size in ``parameters.binary_data_size``, in the order of ``inputs``. An
output is returned as binary data when its ``parameters.binary_data`` is true, or, for outputs
not listed, when the request's ``parameters.binary_data_output`` is true (what ``tritonclient``
sends by default); the response then carries its own ``Inference-Header-Content-Length``.

Every check names the tensor and says expected vs got: a datatype other than the model's is a 400
naming the expected type (nothing is converted), a wrong shape or element count a 400, more than
the configured batch or tensor elements a 413.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from heal_swin.errors import InputError
from heal_swin.serve.errors import BadRequestError, PayloadTooLargeError
from heal_swin.serve.repository import NotFoundError
from heal_swin.serve.runtime import NUMPY_DTYPES, TensorSpec
from heal_swin.serve.schemas import InferRequest

__all__ = ["HEADER_LENGTH", "Decoded", "decode_body", "encode_response", "input_arrays", "parse_request"]

HEADER_LENGTH = "Inference-Header-Content-Length"
_FLOAT_LIMIT = 1e6  # larger input magnitudes are not images or features; they only make non-finite outputs


@dataclass
class Decoded:
    request: InferRequest
    binary: memoryview  # the bytes after the JSON header


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate`` (as tritonclient's request compression sends), bounded by ``max_bytes``."""
    enc = (content_encoding or "identity").strip().lower()
    if enc == "identity":
        return body
    if enc not in ("gzip", "deflate"):
        raise BadRequestError(f"Content-Encoding: expected gzip, deflate or identity, got {enc!r}")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise BadRequestError(f"request body: not valid {enc} data ({e})") from None
    if len(out) > max_bytes:
        raise PayloadTooLargeError(f"request body: above the limit of {max_bytes} bytes once decompressed")
    if not d.eof:
        raise BadRequestError(f"request body: truncated {enc} data")
    return out


def parse_request(body: bytes, header_length: str | None) -> Decoded:
    """Split the body at the header length (if given) and validate the JSON header."""
    if header_length is None:
        head, rest = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequestError(
                f"{HEADER_LENGTH}: expected an integer, got {header_length[:32]!r}"
            ) from None
        if not 0 < n <= len(body):
            raise BadRequestError(f"{HEADER_LENGTH}: expected 1..{len(body)} (the body's size), got {n}")
        head, rest = body[:n], body[n:]
    try:
        request = InferRequest.model_validate_json(head)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "request"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise InputError(f"invalid request: {loc}: {err.get('msg', 'invalid')}{more}") from None
    return Decoded(request, memoryview(rest))


def input_arrays(
    decoded: Decoded, specs: Sequence[TensorSpec], model: str, max_batch: int, max_elements: int
) -> dict[str, np.ndarray]:
    """The request's input tensors as arrays of the model's datatypes, every one checked against its spec."""
    req = decoded.request
    by_name = {s.name: s for s in specs}
    names = [i.name for i in req.inputs]
    missing = [s.name for s in specs if s.name not in names]
    unknown = [n for n in names if n not in by_name]
    if unknown or missing or len(set(names)) != len(names):
        raise BadRequestError(
            f"inputs: model {model!r} takes {len(specs)} input{'s' if len(specs) > 1 else ''} "
            f"({', '.join(repr(s.name) for s in specs)}); got {', '.join(map(repr, names)) or 'none'}"
        )
    total = 0
    offset = 0
    batch: int | None = None
    out: dict[str, np.ndarray] = {}
    for i, inp in enumerate(req.inputs):
        spec = by_name[inp.name]
        where = f"inputs[{i}] ({inp.name!r})"
        if inp.datatype != spec.datatype:
            raise BadRequestError(
                f"{where}.datatype: model {model!r} expects {spec.datatype}, got {inp.datatype}"
            )
        shape = list(inp.shape)
        if (
            len(shape) != len(spec.shape)
            or any(w >= 0 and g != w for g, w in zip(shape, spec.shape))
            or min(shape) < 0
        ):
            want = ", ".join(
                "B" if k == 0 and d < 0 else ("*" if d < 0 else str(d)) for k, d in enumerate(spec.shape)
            )
            raise BadRequestError(f"{where}.shape: expected [{want}], got {shape}")
        if batch is not None and shape[0] != batch:
            raise BadRequestError(f"{where}.shape: batch {shape[0]} differs from the other inputs' {batch}")
        batch = shape[0]
        if not 1 <= batch <= max_batch:
            raise PayloadTooLargeError(
                f"{where}.shape: batch {batch}; expected 1 <= B <= {max_batch} (max_infer_batch)"
            )
        count = math.prod(shape)
        total += count
        if total > max_elements:
            raise PayloadTooLargeError(
                f"inputs: {total} tensor elements, above the limit of {max_elements} (max_tensor_elements)"
            )
        size = (inp.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequestError(
                    f"{where}.parameters.binary_data_size: expected a byte count, got {size!r}"
                )
            if inp.data is not None:
                raise BadRequestError(f"{where}: give either 'data' or parameters.binary_data_size, not both")
            want = count * spec.dtype.itemsize
            if size != want:
                raise BadRequestError(
                    f"{where}.parameters.binary_data_size: expected {want} bytes for {spec.datatype} {shape}, got {size}"
                )
            if offset + size > len(decoded.binary):
                raise BadRequestError(
                    f"{where}: binary data ends after {len(decoded.binary) - offset} of {size} bytes"
                )
            arr = np.frombuffer(decoded.binary[offset : offset + size], dtype=spec.dtype).reshape(shape)
            offset += size
        else:
            if inp.data is None:
                raise BadRequestError(f"{where}: no 'data' and no parameters.binary_data_size")
            arr = _from_json(inp.data, spec, shape, where)
        if spec.datatype.startswith("FP") and not (
            np.all(np.isfinite(arr)) and np.abs(arr).max(initial=0) <= _FLOAT_LIMIT
        ):
            raise InputError(f"{where}.data: values must be finite numbers of magnitude <= {_FLOAT_LIMIT:g}")
        out[inp.name] = arr
    if offset != len(decoded.binary):
        raise BadRequestError(
            f"request body: {len(decoded.binary) - offset} bytes after the binary inputs are not claimed by any input"
        )
    return out


def _from_json(data: list, spec: TensorSpec, shape: list[int], where: str) -> np.ndarray:
    kind = spec.datatype
    try:
        flat = np.asarray(data, dtype=np.float64 if kind.startswith("FP") else object)
    except (ValueError, TypeError, OverflowError):
        raise InputError(f"{where}.data: expected {kind} numbers (a flat or nested row-major list)") from None
    if flat.size != math.prod(shape):
        raise InputError(
            f"{where}.data: expected {math.prod(shape)} values for shape {shape}, got {flat.size}"
        )
    flat = flat.reshape(-1)
    if kind.startswith("FP"):
        return flat.astype(spec.dtype).reshape(shape)
    if kind == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise InputError(f"{where}.data: expected true/false values for BOOL")
        return flat.astype(np.bool_).reshape(shape)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        raise InputError(f"{where}.data: expected integers for {kind}")
    info = np.iinfo(spec.dtype)
    lo, hi = (min(flat), max(flat)) if flat.size else (0, 0)
    if lo < info.min or hi > info.max:
        raise InputError(
            f"{where}.data: {kind} values must be in [{info.min}, {info.max}], got {lo if lo < info.min else hi}"
        )
    return flat.astype(spec.dtype).reshape(shape)


def requested_outputs(
    decoded: Decoded, specs: Sequence[TensorSpec], model: str
) -> list[tuple[TensorSpec, bool]]:
    """(output spec, as binary) for each output to return: the listed ones in order, else all."""
    req = decoded.request
    default_binary = bool((req.parameters or {}).get("binary_data_output", False))
    by_name = {s.name: s for s in specs}
    if not req.outputs:
        return [(s, default_binary) for s in specs]
    chosen = []
    for o in req.outputs:
        if o.name not in by_name:
            raise NotFoundError(
                f"outputs: model {model!r} has output(s) {', '.join(map(repr, by_name))}, not {o.name!r}"
            )
        chosen.append((by_name[o.name], bool((o.parameters or {}).get("binary_data", default_binary))))
    return chosen


def encode_response(
    model: str, version: str, request_id: str | None, outputs: Sequence[tuple[TensorSpec, bool, np.ndarray]]
) -> tuple[Iterator[bytes], dict[str, str]]:
    """The response body (as chunks, so large JSON tensors are never one string) and its headers."""
    header_outputs = []
    raw: list[bytes] = []
    json_tensors: list[tuple[int, np.ndarray]] = []
    for k, (spec, binary, arr) in enumerate(outputs):
        entry: dict = {"name": spec.name, "datatype": spec.datatype, "shape": list(arr.shape)}
        if binary:
            data = np.ascontiguousarray(arr, NUMPY_DTYPES[spec.datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            json_tensors.append((k, arr))
        header_outputs.append(entry)
    head: dict = {"model_name": model, "model_version": version, "outputs": header_outputs}
    if request_id is not None:
        head["id"] = request_id
    if not json_tensors:
        text = json.dumps(head).encode()
        chunks: list[bytes] = [text, *raw]
        headers = {"content-type": "application/octet-stream" if raw else "application/json"}
        if raw:
            headers[HEADER_LENGTH] = str(len(text))
        return iter(chunks), headers
    return _json_chunks(head, json_tensors, raw), _json_headers(head, json_tensors, raw)


def _json_headers(head: dict, json_tensors: list, raw: list[bytes]) -> dict[str, str]:
    headers = {"content-type": "application/octet-stream" if raw else "application/json"}
    if raw:  # the header length must be known before streaming: the JSON text is measured as written
        headers[HEADER_LENGTH] = str(sum(len(c) for c in _json_text(head, json_tensors)))
    return headers


def _json_chunks(head: dict, json_tensors: list, raw: list[bytes]) -> Iterator[bytes]:
    yield from _json_text(head, json_tensors)
    yield from raw


def _json_text(head: dict, json_tensors: list[tuple[int, np.ndarray]]) -> Iterator[bytes]:
    """The JSON header with each JSON tensor's ``data`` written in slices of 64k values."""
    marker = "\x00DATA{}\x00"
    outs = [dict(o) for o in head["outputs"]]
    for k, _ in json_tensors:
        outs[k]["data"] = marker.format(k)
    text = json.dumps({**head, "outputs": outs})
    for k, arr in json_tensors:
        before, text = text.split(json.dumps(marker.format(k)), 1)
        yield before.encode()
        flat = arr.reshape(-1)
        yield b"["
        for start in range(0, flat.size, 65536):
            part = flat[start : start + 65536]
            values = part.tolist() if part.dtype != np.float16 else part.astype(np.float32).tolist()
            if (
                part.dtype.kind == "f" and not np.isfinite(part).all()
            ):  # NaN = no prediction (depth outside the grid)
                values = [v if math.isfinite(v) else None for v in values]
            piece = json.dumps(values)[1:-1]
            yield (b"," if start else b"") + piece.encode()
        yield b"]"
    yield text.encode()
