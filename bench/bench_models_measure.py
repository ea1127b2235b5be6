"""bench_models.py's measurements in fresh processes: matmul peaks, peak memory, onnxruntime vs eager.

Each runs a short program in a subprocess (its own thread count, nothing else loaded), so the
parent's kept-loaded workers do not share its allocations or thread pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def measure_peaks(threads: int) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of square matmuls, best of 5, in a subprocess with ``threads``."""
    code = f"""
import time, torch, json
torch.set_num_threads({threads})
n = 2048
out = {{}}
for name, a in [("fp32", torch.randn(n, n)), ("bf16", torch.randn(n, n).bfloat16()),
                ("int8", torch.randint(-64, 64, (n, n), dtype=torch.int8))]:
    f = (lambda a=a: torch._int_mm(a, a)) if name == "int8" else (lambda a=a: a @ a)
    f(); ts = []
    for _ in range(5):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    out[name] = 2 * n**3 / min(ts) / 1e9
print(json.dumps(out))
"""
    return json.loads(_python(code, {"OMP_NUM_THREADS": str(threads)}, check=True).stdout)


def measure_memory(tree: Path, label: str, mode: str, retain_heap: bool = False) -> dict[str, Any]:
    """Fresh process: paper model at nside 256, batch 1; RSS after building and peak after one step
    (two steps with ``retain_heap``: the second runs on the kept heap, where fragmentation would show)."""
    code = f"""
import json, resource, sys, time, torch
sys.path.insert(0, {str(ROOT / "bench")!r})
if {retain_heap!r}:
    from bench_models import retain_freed_memory
    assert retain_freed_memory()
torch.set_num_threads(2)
from heal_swin.models import create_model
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
m = create_model("heal_swin_paper", nside=256)
x = torch.randn(1, 3, m.grid.npix)
built = rss()
opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
y = torch.randint(0, m.out_chans, (1, m.grid.npix))
for _ in range(2 if {retain_heap!r} else 1):
    t0 = time.perf_counter()
    if "{mode}" == "train":
        m.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    else:
        m.eval()
        with torch.no_grad():
            m(x)
print(json.dumps({{"built_mib": built, "peak_mib": rss(), "step_s": time.perf_counter() - t0}}))
"""
    out = _python(code, {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "2"}, check=False)
    if out.returncode != 0:  # e.g. SIGKILL from the OOM killer: recorded, and the other sections kept
        why = "killed (out of memory?)" if out.returncode == -9 else f"exit {out.returncode}"
        tail = out.stderr.strip().splitlines()[-1:] if out.stderr.strip() else []
        return {"tree": label, "mode": mode, "error": " ".join([why, *tail])}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"tree": label, "mode": mode, **r, "over_model_mib": r["peak_mib"] - r["built_mib"]}


def measure_onnx(nside: int, threads: int, rounds: int) -> dict[str, Any]:
    """Export the paper model at ``nside`` (fp32 + int8), then alternate eager / ORT fp32 / ORT int8."""
    code = f"""
import json, tempfile, time, numpy as np, torch
from pathlib import Path
from statistics import median
torch.set_num_threads({threads})
from heal_swin.models import create_model
from heal_swin.export.onnx_export import export_onnx
from heal_swin.export.quantize import ort_session, quantize_int8
torch.manual_seed(0)
m = create_model("heal_swin_paper", nside={nside}).eval()
x = torch.randn(1, 3, m.grid.npix)
d = Path(tempfile.mkdtemp())
t0 = time.perf_counter(); p = export_onnx(m, x, d / "m.onnx"); export_s = time.perf_counter() - t0
q = quantize_int8(p, d / "m.int8.onnx")
s32, s8 = ort_session(p, {threads}), ort_session(q, {threads})
name = s32.get_inputs()[0].name
xn = x.numpy()
def eager():
    with torch.no_grad(): return m(x).numpy()
fns = {{"eager_fp32": eager, "ort_fp32": lambda: s32.run(None, {{name: xn}})[0], "ort_int8": lambda: s8.run(None, {{name: xn}})[0]}}
outs = {{k: f() for k, f in fns.items()}}
times = {{k: [] for k in fns}}
for r in range({rounds}):
    for k, f in fns.items():
        t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
ref = outs["eager_fp32"]
acc = {{k: {{"max_abs": float(np.abs(o - ref).max()), "argmax_agree": float((o.argmax(1) == ref.argmax(1)).mean())}} for k, o in outs.items()}}
print(json.dumps({{"nside": {nside}, "threads": {threads}, "export_s": export_s, "median_s": {{k: median(v) for k, v in times.items()}}, "accuracy": acc}}))
"""
    out = _python(code, {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _python(code: str, env: dict[str, str], check: bool) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (outside the repository, so ``PYTHONPATH`` picks the tree)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=check,
        env=dict(os.environ, **env),
        cwd=tempfile.gettempdir(),
    )
