"""deploy/inferenceservice.yaml against KServe's own InferenceService schema (the KServe Python SDK's models).

Every key must be a field of the SDK's model for that place (``V1beta1InferenceService`` down to the
Kubernetes types it embeds), in its serialised camelCase spelling, with a value of the field's type;
then the fields our deployment relies on are checked. The checker is tested on broken copies.

The SDK's schema is read in a subprocess: importing ``kserve`` registers its own ``inference.*`` gRPC
protos in protobuf's default pool, which then makes ``tritonclient.grpc`` (same names) fail to import.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from heal_swin.export.exporter import NAME_RE

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "inferenceservice.yaml"


_SCHEMA_DUMP = """
import json, kserve.models, kubernetes.client.models
out = {}
for mod in (kubernetes.client.models, kserve.models):
    for name in dir(mod):
        cls = getattr(mod, name)
        if isinstance(cls, type) and hasattr(cls, "attribute_map") and hasattr(cls, "openapi_types"):
            out[name] = {key: cls.openapi_types[attr] for attr, key in cls.attribute_map.items()}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def schema() -> dict[str, dict[str, str]]:
    """{model class: {serialised field name: SDK type}} of every KServe and Kubernetes model."""
    r = subprocess.run(
        [sys.executable, "-c", _SCHEMA_DUMP], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def check(schema: dict[str, dict[str, str]], value: Any, type_name: str, where: str) -> None:
    """Raise AssertionError naming ``where`` if ``value`` does not fit the SDK type ``type_name``."""
    if m := re.fullmatch(r"Optional\[(.+)\]", type_name):
        check(schema, value, m.group(1), where)
    elif m := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        assert isinstance(value, list), f"{where}: expected a list, got {value!r}"
        for i, v in enumerate(value):
            check(schema, v, m.group(1), f"{where}[{i}]")
    elif m := re.fullmatch(
        r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name
    ):  # kserve's and kubernetes' spellings
        assert isinstance(value, dict), f"{where}: expected a mapping, got {value!r}"
        for k, v in value.items():
            check(schema, v, m.group(1) or m.group(2), f"{where}.{k}")
    elif type_name == "ResourceQuantity":  # "500m", "4Gi" (YAML may also give a bare number)
        assert isinstance(value, (str, int)) and not isinstance(value, bool), (
            f"{where}: expected a quantity, got {value!r}"
        )
    elif type_name in ("str", "int", "bool", "float"):
        ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[type_name]  # fmt: skip
        assert ok, f"{where}: expected {type_name}, got {value!r}"
    elif type_name != "object":
        assert type_name in schema, f"{where}: no KServe/Kubernetes model named {type_name}"
        fields = schema[type_name]
        assert isinstance(value, dict), f"{where}: expected a {type_name} mapping, got {value!r}"
        for key, v in value.items():
            assert key in fields, (
                f"{where}.{key}: not a field of {type_name} (known: {', '.join(sorted(fields))})"
            )
            check(schema, v, fields[key], f"{where}.{key}")


def test_manifest_fits_the_kserve_schema(schema):
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert len(docs) == 1
    isvc = docs[0]
    check(schema, isvc, "V1beta1InferenceService", "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"])  # a DNS-1123 label
    pred = isvc["spec"]["predictor"]
    assert 1 <= pred["minReplicas"] <= pred["maxReplicas"]
    model = pred["model"]
    # Triton serves the repository export writes: platform onnxruntime_onnx <-> model format onnx, KServe v2 protocol
    assert (
        model["modelFormat"]["name"] == "onnx"
        and model["runtime"] == "kserve-tritonserver"
        and model["protocolVersion"] == "v2"
    )
    assert re.fullmatch(r"(s3|gs|pvc|https?)://\S+", model["storageUri"])
    args = model["args"]
    assert "--model-control-mode=explicit" in args  # REPO/cameras/ would stop a polling Triton
    loaded = [a.split("=", 1)[1] for a in args if a.startswith("--load-model=")]
    assert loaded and all(NAME_RE.match(n) and n != "cameras" for n in loaded)
    res = model["resources"]
    assert set(res["requests"]) <= set(res["limits"]) | {"cpu", "memory"}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("spec", "predictor", "model", "storageURI"),
            "s3://x",
            r"storageURI: not a field of V1beta1ModelSpec",
        ),
        (("spec", "predictor", "minReplicas"), "one", r"minReplicas: expected int"),
        (("spec", "predictor", "model", "args"), "--x", r"args: expected a list"),
        (("spec", "predictor", "model", "resources", "limits", "cpu"), 4, r"limits.cpu: expected str"),
        (("metadata", "lables"), {}, r"lables: not a field of V1ObjectMeta"),
    ],
)
def test_checker_rejects_broken_manifests(schema, path, value, message):
    isvc = copy.deepcopy(yaml.safe_load(MANIFEST.read_text()))
    node = isvc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(AssertionError, match=message):
        check(schema, isvc, "V1beta1InferenceService", "InferenceService")
