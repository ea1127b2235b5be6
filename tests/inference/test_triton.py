"""The Triton model repository layout: config.pbtxt written from the manifest and read back.

The text is checked twice: with our reader (field by field) and with protobuf's own text-format
parser against a hand-declared subset of Triton's ``inference.ModelConfig`` (field and enum names
as in Triton's model_config.proto), so a typo in a field name or an enum fails here, not in Triton.
"""

from __future__ import annotations

import pytest

from heal_swin.inference.manifest import Manifest
from heal_swin.inference.triton import (
    end_to_end_config_text,
    model_config_text,
    old_layout,
    parse_pbtxt,
    reexport_hint,
    version_folders,
)


def manifest(**kw) -> Manifest:
    base = {
        "name": "seg", "model_name": "heal_swin_tiny", "task": "segmentation", "input_kind": "sphere", "in_chans": 3, "out_chans": 4,
        "input_shape": [-1, 3, 512], "output_shape": [-1, 4, 512], "onnx_sha256": "0" * 64, "opset": 18, "nside": 8,
        "base_pixels": list(range(8)), "class_names": list("abcd"), "class_colours": [[0, 0, 0]] * 4,
        "normalisation": {"colour_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }  # fmt: skip
    base.update(kw)
    return Manifest(**base).validate()


def test_config_fields_parse_back():
    cfg = parse_pbtxt(model_config_text(manifest(), max_batch_size=16, max_queue_delay_us=2000))
    assert (
        cfg["name"] == ["seg"] and cfg["platform"] == ["onnxruntime_onnx"] and cfg["max_batch_size"] == [16]
    )
    assert cfg["version_policy"] == [{"all": [{}]}]
    (inp,), (out,) = cfg["input"], cfg["output"]
    assert inp == {
        "name": ["input"],
        "data_type": ["TYPE_FP32"],
        "dims": [3, 512],
    }  # no batch dim: max_batch_size > 0
    assert out == {"name": ["output"], "data_type": ["TYPE_FP32"], "dims": [4, 512]}
    assert cfg["dynamic_batching"] == [{"max_queue_delay_microseconds": [2000]}]
    flat = parse_pbtxt(model_config_text(manifest(input_kind="flat", nside=None, base_pixels=None, img_size=[48, 64],
                                                  input_shape=[-1, 3, 48, 64], output_shape=[-1, 4, 48, 64])))  # fmt: skip
    assert flat["input"][0]["dims"] == [3, 48, 64] and flat["output"][0]["dims"] == [4, 48, 64]
    with pytest.raises(ValueError, match="max_batch_size"):
        model_config_text(manifest(), max_batch_size=0)


@pytest.mark.parametrize("bad", ['name: "a', "input [ { name: 1 ", "x: @", "{"])
def test_reader_rejects_malformed_text(bad):
    with pytest.raises(ValueError, match="config.pbtxt"):
        parse_pbtxt(bad)


def _model_config_class():
    """A subset of Triton's inference.ModelConfig declared by hand (names as in model_config.proto)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="heal_swin_test_model_config.proto", package="inference", syntax="proto3"
    )
    dt = fdp.enum_type.add(name="DataType")
    for i, n in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
                           "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING"]):  # fmt: skip
        dt.value.add(name=n, number=i)

    def msg(name, *fields, parent=None):
        m = (parent.nested_type if parent else fdp.message_type).add(name=name)
        for num, (fname, ftype, label, tname) in enumerate(fields, 1):
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
        return m

    one, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg(
        "ModelInput",
        ("name", F.TYPE_STRING, one, None),
        ("data_type", F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", F.TYPE_INT64, rep, None),
    )
    msg(
        "ModelOutput",
        ("name", F.TYPE_STRING, one, None),
        ("data_type", F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", F.TYPE_INT64, rep, None),
    )
    policy = msg("ModelVersionPolicy")
    msg("All", parent=policy)
    msg("Latest", ("num_versions", F.TYPE_UINT32, one, None), parent=policy)
    policy.field.add(
        name="latest",
        number=1,
        type=F.TYPE_MESSAGE,
        label=one,
        type_name=".inference.ModelVersionPolicy.Latest",
    )
    policy.field.add(
        name="all", number=2, type=F.TYPE_MESSAGE, label=one, type_name=".inference.ModelVersionPolicy.All"
    )
    msg(
        "ModelDynamicBatching",
        ("preferred_batch_size", F.TYPE_INT32, rep, None),
        ("max_queue_delay_microseconds", F.TYPE_UINT64, one, None),
    )
    group = msg("ModelInstanceGroup", ("count", F.TYPE_INT32, one, None))
    kind = group.enum_type.add(name="Kind")
    for i, n in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=n, number=i)
    group.field.add(
        name="kind", number=2, type=F.TYPE_ENUM, label=one, type_name=".inference.ModelInstanceGroup.Kind"
    )
    msg("ModelParameter", ("string_value", F.TYPE_STRING, one, None))
    config = msg(
        "ModelConfig",
        ("name", F.TYPE_STRING, one, None), ("platform", F.TYPE_STRING, one, None),
        ("version_policy", F.TYPE_MESSAGE, one, ".inference.ModelVersionPolicy"), ("max_batch_size", F.TYPE_INT32, one, None),
        ("input", F.TYPE_MESSAGE, rep, ".inference.ModelInput"), ("output", F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
        ("dynamic_batching", F.TYPE_MESSAGE, one, ".inference.ModelDynamicBatching"), ("backend", F.TYPE_STRING, one, None),
        ("instance_group", F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
    )  # fmt: skip
    entry = msg(
        "ParametersEntry",
        ("key", F.TYPE_STRING, one, None),
        ("value", F.TYPE_MESSAGE, one, ".inference.ModelParameter"),
        parent=config,
    )
    entry.options.map_entry = True
    config.field.add(
        name="parameters",
        number=20,
        type=F.TYPE_MESSAGE,
        label=rep,
        type_name=".inference.ModelConfig.ParametersEntry",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_config_is_valid_protobuf_text_format():
    text_format = pytest.importorskip("google.protobuf.text_format")
    cfg = text_format.Parse(model_config_text(manifest(name='we"ird')), _model_config_class()())
    assert cfg.name == 'we"ird' and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 8
    assert cfg.HasField("version_policy") and cfg.version_policy.HasField("all")
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("input", 11, [3, 512])]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("output", [4, 512])]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 5000


def test_versions_and_old_layout(tmp_path):
    for name in ("1", "2", "10", "01", "x", "0"):
        (tmp_path / name).mkdir()
    (tmp_path / "3").write_text("a file, not a version")
    assert list(version_folders(tmp_path)) == [1, 2, 10]  # Triton's rule: positive, no leading zeros
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.onnx").write_bytes(b"")
    (old / "model.int8.onnx").write_bytes(b"")
    assert old_layout(old) and not old_layout(tmp_path)
    assert reexport_hint(old) == f"heal-swin export --checkpoint MODEL.safetensors --out {old} --int8"


def e2e_manifest(task: str = "segmentation") -> Manifest:
    out = (
        {"name": "mask", "datatype": "UINT8", "shape": [-1, 121, 160]}
        if task == "segmentation"
        else {"name": "depth", "datatype": "FP32", "shape": [-1, 121, 160]}
    )
    e2e = {"camera": "FV", "image_size": [160, 121], "calibration": {}, "sphere_model": "seg", "sampling": {"mode": "bilinear", "taps": 4},
           "input": {"name": "image", "datatype": "UINT8", "shape": [-1, 121, 160, 3]}, "output": out}  # fmt: skip
    kw = {} if task == "segmentation" else {"task": "depth", "out_chans": 1, "output_shape": [-1, 1, 512], "class_names": [], "class_colours": [],
                                            "depth": {"log_mean": 1.0, "log_std": 0.5}}  # fmt: skip
    return manifest(name="seg_FV", end_to_end=e2e, **kw)


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
@pytest.mark.parametrize("task", ["segmentation", "depth"])
def test_end_to_end_config(backend, task):
    """The end-to-end model's config: uint8 frame (H, W, 3) in, mask uint8 / depth FP32 (H, W) out, both backends."""
    text_format = pytest.importorskip("google.protobuf.text_format")
    text = end_to_end_config_text(e2e_manifest(task), backend=backend, max_batch_size=4)
    cfg = text_format.Parse(text, _model_config_class()())
    assert cfg.name == "seg_FV" and cfg.max_batch_size == 4
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [
        ("image", 2, [121, 160, 3])
    ]  # TYPE_UINT8
    want_out = ("mask", 2) if task == "segmentation" else ("depth", 11)  # TYPE_UINT8 / TYPE_FP32
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [(*want_out, [121, 160])]
    if backend == "onnxruntime":
        assert cfg.platform == "onnxruntime_onnx" and not cfg.backend and not cfg.instance_group
    else:
        assert cfg.backend == "python" and not cfg.platform
        assert [(g.kind, g.count) for g in cfg.instance_group] == [(2, 1)] and cfg.parameters[
            "intra_op_threads"
        ].string_value == "0"
    assert parse_pbtxt(text)["input"][0]["dims"] == [121, 160, 3]
    with pytest.raises(ValueError, match="not an end-to-end model"):
        end_to_end_config_text(manifest())
    with pytest.raises(ValueError, match="backend"):
        end_to_end_config_text(e2e_manifest(task), backend="tensorrt")
