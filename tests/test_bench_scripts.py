"""The benchmark scripts still run: every one parses its options, the cheap ones run at toy size.

Nothing here measures speed; these catch a script broken by a change elsewhere (a renamed API, a
manifest field it no longer sets), which otherwise surfaces only when someone reruns the benchmark.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "bench").glob("*.py"))
SCRIPTS = [p for p in MODULES if 'if __name__ == "__main__":' in p.read_text()]
HELPERS = [p for p in MODULES if p not in SCRIPTS]  # code a script imports from beside it


def _run(args: list[str], tmp_path: Path, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_script_is_listed() -> None:
    assert len(SCRIPTS) >= 10, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("helper", HELPERS, ids=[p.stem for p in HELPERS])
def test_helper_modules_belong_to_a_script(helper: Path) -> None:
    importers = [
        p.name
        for p in MODULES
        if re.search(rf"^\s*(from|import) {helper.stem}\b", p.read_text(), re.MULTILINE)
    ]
    assert importers, f"{helper.name} is not imported by any bench script"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_help(script: Path, tmp_path: Path) -> None:
    r = _run([str(script), "--help"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:"), r.stdout[:200]


def test_geometry_toy_size(tmp_path: Path) -> None:
    out = tmp_path / "geometry.json"
    args = ["--nside", "16", "--repeat", "1", "--area-nsides", "8", "--out", str(out)]
    r = _run([str(ROOT / "bench" / "bench_geometry.py"), *args], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["nside"] == 16 and result["rows"]


def test_lens_models_toy_size(tmp_path: Path) -> None:
    out = tmp_path / "lens.json"
    r = _run(
        [str(ROOT / "bench" / "bench_lens_models.py"), "--repeat", "1", "--out", str(out)], tmp_path, 300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["rows"] and result["radtan_fit"]


def test_serve_soak_toy_size(tmp_path: Path) -> None:
    """A few seconds of the memory soak: a real server, every answer 200 or 4xx, RSS under budget."""
    pytest.importorskip("httpx")
    out = tmp_path / "soak.json"
    args = ["--soak", "--soak-seconds", "3", "--soak-nside", "8", "--good-clients", "1"]
    args += ["--large-clients", "1", "--v2-clients", "1", "--out", str(out)]
    r = _run([str(ROOT / "bench" / "bench_serve.py"), *args], tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    statuses = {int(code) for row in result["rows"] for code in row["statuses"]}
    assert statuses and all(code == 200 or 400 <= code < 500 for code in statuses), result["rows"]
    assert {row["kind"] for row in result["rows"]} == {"good", "large", "v2"}
    assert result["rss_max_bytes"] < result["budget_bytes"]


def test_compare_models_without_data_says_so(tmp_path: Path) -> None:
    r = _run(
        [str(ROOT / "bench" / "compare_models.py"), "--data", str(tmp_path / "none"), "--plan"], tmp_path, 120
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "no calibration/*.json" in r.stderr


def test_bench_models_reports_a_memory_run_that_died(monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed memory process (the OOM killer's SIGKILL) becomes an error row; the report still renders."""
    bench = _bench_models()
    killed = subprocess.CompletedProcess([], -9, stdout="", stderr="")
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: killed)
    row = bench.measure_memory(ROOT, "current", "train")
    assert row == {"tree": "current", "mode": "train", "error": "killed (out of memory?)"}
    empty = {
        "load_start": (0.0,),
        "load_end": (0.0,),
        "forward": [],
        "train": [],
        "onnx": [],
        "peaks_gflops": {},
    }
    assert "| current | train | killed (out of memory?) | - | - | - |" in bench.report(
        {**empty, "memory": [row]}
    )


def _bench_models():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "bench_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("native", [True, False])
def test_bench_models_starts_bf16_workers_only_on_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    bench = _bench_models()
    monkeypatch.setattr(bench, "_native_bf16", lambda: native)
    monkeypatch.setattr(bench, "Worker", lambda label, tree, spec: label)  # no processes
    labels = bench._workers(
        ("fp32", ROOT, {"precision": None}),
        ("bf16", ROOT, {"precision": "bf16"}),
        ("compiled fp32", ROOT, {}),
    )
    assert labels == (["fp32", "bf16", "compiled fp32"] if native else ["fp32", "compiled fp32"])


def test_bench_models_out_keeps_the_other_sections_of_that_file(tmp_path: Path) -> None:
    """A partial run with --out merges into that file, not into bench/results/models.json."""
    merge_previous = _bench_models().merge_previous
    out = tmp_path / "other.json"
    out.write_text(json.dumps({"train": [{"variant": "fp32"}], "runs": {"train": {"command": "x"}}}))
    new = {"load_start": (0.0,), "load_end": (0.0,), "meta": {"command": "y", "date": "d"}, "forward": []}
    merged = merge_previous({**new, "onnx": [{"nside": 64}]}, {"onnx"}, False, out)
    assert merged["train"] == [{"variant": "fp32"}] and merged["onnx"] == [{"nside": 64}]
    assert merged["runs"]["train"] == {"command": "x"} and merged["runs"]["onnx"]["command"] == "y"


def test_equivariance_members_are_grouped_by_family_and_augmentation(tmp_path: Path) -> None:
    """Folders of bench/equivariance_train.sh (flip / rot90) and links to compare_models' _rot runs alike."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "equivariance_models", ROOT / "bench" / "equivariance_models.py"
    )
    eq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eq)
    names = ["swin_unet_v1_rot_s1", "swin_unet_v1_rot_s0", "swin_unet_v1_flip_s0", "heal_swin_rot90_s0",
             "s2cnn_rot180_s2", "heal_swin_v1_turn_s0", "heal_swin_v1_flip_s3"]  # fmt: skip
    for n in names:
        (tmp_path / n).mkdir()
        (tmp_path / n / "model.safetensors").write_bytes(b"")
    (tmp_path / "no_model_flip_s0").mkdir()  # no model file: not a member
    got = {k: [p.parent.name for p in v] for k, v in eq._members(tmp_path).items()}
    assert got == {
        ("heal_swin", "rot90"): ["heal_swin_rot90_s0"],
        ("heal_swin_v1", "flip"): ["heal_swin_v1_flip_s3"],
        ("s2cnn", "rot180"): ["s2cnn_rot180_s2"],
        ("swin_unet_v1", "flip"): ["swin_unet_v1_flip_s0"],
        ("swin_unet_v1", "rot"): ["swin_unet_v1_rot_s0", "swin_unet_v1_rot_s1"],  # seed order
    }


@pytest.mark.skipif(sys.platform != "linux", reason="the allocator setting is glibc's")
def test_bench_models_retained_heap_workers_get_the_current_trees_setting(tmp_path: Path) -> None:
    # A baseline worker imports heal_swin from the baseline tree, which has no allocator module: the
    # bench loads the current tree's file by path and opts in, so both trees get the same setting.
    code = (
        f"import sys, os; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_models\n"
        "os.environ.pop('HEAL_SWIN_RETAIN_FREED_MEMORY', None)\n"
        "print(bench_models.retain_freed_memory(), os.environ['HEAL_SWIN_RETAIN_FREED_MEMORY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "1"]


@pytest.mark.parametrize("thp", [True, False])
def test_bench_models_sets_pytorchs_huge_page_switch_per_worker(
    monkeypatch: pytest.MonkeyPatch, thp: bool
) -> None:
    """THP_MEM_ALLOC_ENABLE is read once per process: only "THP" variants get 1, whatever the parent has."""
    bench = _bench_models()
    seen = {}

    def popen(cmd, env, **kw):  # type: ignore[no-untyped-def]
        seen.update(env)
        raise RuntimeError("no process")

    monkeypatch.setattr(bench.subprocess, "Popen", popen)
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    with pytest.raises(RuntimeError):
        bench.Worker("x", ROOT, {"threads": 1, "thp": thp})
    assert seen["THP_MEM_ALLOC_ENABLE"] == ("1" if thp else "0") and seen["OMP_NUM_THREADS"] == "1"


def test_bench_models_report_shows_training_steps_as_share_of_the_peak() -> None:
    bench = _bench_models()
    row = {"model": "m", "nside": 32, "batch": 8, "threads": 1, "mode": "train", "group": "g", "min_s": 0.1}
    rows = [
        {**row, "variant": "baseline fp32", "median_s": 0.2},
        {**row, "variant": "fp32", "median_s": 0.1, "flops": 5e9},  # 50 GFLOP/s
    ]
    r = {"load_start": (0.0,), "load_end": (0.0,), "forward": [], "train": rows, "onnx": []}
    table = bench.report({**r, "peaks_gflops": {"1": {"fp32": 100.0, "bf16": 200.0, "int8": 400.0}}})
    assert "| m | 32 | 8 | 1 | fp32 | 100 | 100 | 2.00x | 50 % |" in table
    assert "| m | 32 | 8 | 1 | baseline fp32 | 200 | 100 | 1.00x | 25 % |" in table
