"""Model speed benchmark: HEAL-SWIN now vs a baseline commit, against this CPU's matmul peaks.

    python bench/bench_models.py [--baseline baf9257] [--threads 1 2] [--rounds 5]
                                 [--sections peaks,forward,train,compile,memory,onnx] [--quick]

* Each configuration runs in its own worker processes, kept loaded: one with the baseline's code
  (a git worktree of ``--baseline`` in the temporary folder), one per variant of the
  current code (fp32 eager, bf16 autocast, ``torch.compile`` fp32 / bf16 with freezing). Variants
  marked "retained heap" first call ``heal_swin.allocator.retain_freed_memory`` (the current tree's
  file, in baseline workers too), as training does with ``HEAL_SWIN_RETAIN_FREED_MEMORY=1``; "THP"
  runs with PyTorch's ``THP_MEM_ALLOC_ENABLE=1`` (transparent huge pages; every other worker gets 0). The parent
  alternates single forwards (or training steps) between them, round after round, so load changes
  hit all of them alike; ratios are of medians measured in that one run.
* ``peaks``: square sgemm / bf16 / int8 (``torch._int_mm``) matmul throughput in the same run, so
  each forward is also shown as % of the hardware limit (FLOPs counted with ``FlopCounterMode``
  on the written-out formulation: matmuls only, 2 per multiply-add).
* ``memory``: fresh processes per tree, peak RSS of one nside-256 paper forward over the RSS after
  building the model; and one paper training step at nside 256, batch 1.
* ``onnx``: the paper model exported (fp32 and onnxruntime dynamic int8) at nside 64 and 128,
  timed against the eager fp32 model in one process, alternating, same thread count.
Load average is recorded at the start and the end. Writes ``bench/results/models.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper next to this file, even as a worker
from bench_models_measure import measure_memory, measure_onnx, measure_peaks
from bench_models_report import OUT, merge_previous, report

ROOT = Path(__file__).resolve().parents[1]
FORWARD = [("heal_swin_paper", 64), ("heal_swin_paper", 128), ("heal_swin_paper", 256)]
TRAIN = [("heal_swin_tiny", 32, 8), ("heal_swin_small", 64, 4)]  # quickstart recipe's batch; small: no recipe
COMPILE = [("heal_swin_paper", 128)]


# ------------------------------------------------------------------ worker side
def _build(spec: dict[str, Any]):
    import torch

    from heal_swin.models import create_model

    torch.manual_seed(0)
    info: dict[str, Any] = {}
    model = create_model(spec["model"], nside=spec["nside"])
    x = torch.randn(spec["batch"], 3, model.grid.npix)
    bf16 = spec.get("precision") == "bf16"
    if spec["mode"] == "train":
        model.train()
        try:
            from heal_swin.train.tasks import make_optimizer  # the current code's optimizer choice

            opt = make_optimizer(list(model.parameters()), "adamw", 1e-4, 0.0)
        except ImportError:  # the baseline: plain AdamW, as its build_optimizer made
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        y = torch.randint(0, model.out_chans, (spec["batch"], model.grid.npix))
        net = torch.compile(model) if spec.get("compile") else model  # what trainer.compile does

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

        if spec.get("flops"):  # products of forward + backward (the optimizer step has none)
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as fc:
                step()
            info["flops"] = fc.get_total_flops()
        return step, info
    model.eval()
    if spec.get("flops"):
        from torch.utils.flop_counter import FlopCounterMode

        with torch.enable_grad(), FlopCounterMode(display=False) as fc:  # written-out path: counted matmuls
            model(x)
        info["flops"] = fc.get_total_flops()
    fn = model
    if spec.get("compile"):
        import torch._inductor.config as ic

        ic.freezing = True
        fn = torch.compile(model)
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fn(x)
        info["compile_s"] = round(time.perf_counter() - t0, 1)

    def fwd() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fn(x)

    return fwd, info


def retain_freed_memory() -> bool:
    """The current tree's ``heal_swin.allocator.retain_freed_memory()``, loaded by path, so that a
    baseline worker (whose tree predates it) gets exactly the same allocator setting."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_allocator", ROOT / "heal_swin" / "allocator.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    os.environ[module.ENV_SWITCH] = "1"  # the opt-in a user sets
    return module.retain_freed_memory()


def worker(spec: dict[str, Any]) -> None:
    """Build, then answer ``run`` with one timed step (seconds) and ``quit`` with the peak RSS."""
    import resource

    import torch

    if spec.get("retain_heap") and not retain_freed_memory():
        raise SystemExit("retain_freed_memory() did not take on this system")
    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    step, info = _build(spec)
    info["build_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    step()  # warm-up (and the compile, for compiled workers)
    if spec.get("compile") and spec["mode"] == "train":
        info["compile_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({"ready": True, **info}), flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            t0 = time.perf_counter()
            step()
            print(time.perf_counter() - t0, flush=True)
        else:
            break
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


# ------------------------------------------------------------------ parent side
def _native_bf16() -> bool:
    from heal_swin.train.acceleration import bf16_supported

    return bf16_supported("cpu")


def _cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _worktree(ref: str) -> Path:
    """A git worktree of ``ref`` in the system's temporary folder (made once; outside the repo so
    that pytest and linters never see its copy of the code)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / "heal_swin_bench_worktrees" / sha
    if not (path / "heal_swin").is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(path), sha],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


class Worker:
    def __init__(self, label: str, tree: Path, spec: dict[str, Any]) -> None:
        self.label, self.spec, self.times = label, spec, []
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(spec["threads"]))
        # PyTorch's own switch for transparent huge pages on its CPU allocations of >= 2 MiB (read once,
        # at the first allocation, so it is set per process): on only in the variants that ask for it.
        env["THP_MEM_ALLOC_ENABLE"] = "1" if spec.get("thp") else "0"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        self.info = self._read_json()

    def _read_json(self) -> dict[str, Any]:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"worker {self.label} {self.spec} died")

    def run(self) -> None:
        self.proc.stdin.write("run\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        self.times.append(float(self.proc.stdout.readline()))  # type: ignore[union-attr]

    def close(self) -> dict[str, Any]:
        self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        end = self._read_json()
        self.proc.wait()
        return {**self.info, **end}


_GROUPS = iter(range(10**6))
_RUN_ID = time.strftime("%Y%m%dT%H%M%S")


def _workers(*variants: tuple[str, Path, dict[str, Any]]) -> list[Worker]:
    """Start one worker per variant; bf16 variants only on a CPU with native bf16 products (elsewhere
    PyTorch emulates them, which measures nothing this benchmark is about)."""
    bf16 = _native_bf16()
    return [Worker(*v) for v in variants if v[2].get("precision") != "bf16" or bf16]


def alternate(workers: list[Worker], rounds: int) -> list[dict[str, Any]]:
    """Round-robin single steps; the order rotates every round. Rows of one call share a group."""
    group = f"{_RUN_ID}-{next(_GROUPS)}"  # unique across merged runs
    for r in range(rounds):
        for w in workers[r % len(workers) :] + workers[: r % len(workers)]:
            w.run()
    rows = []
    for w in workers:
        info = w.close()
        rows.append(
            {
                "variant": w.label,
                "group": group,
                **w.spec,
                **info,
                "median_s": median(w.times),
                "min_s": min(w.times),
                "times_s": w.times,
            }
        )
    return rows


def _spec(
    model: str, nside: int, threads: int, mode: str = "forward", batch: int = 1, **kw: Any
) -> dict[str, Any]:
    return {"model": model, "nside": nside, "threads": threads, "mode": mode, "batch": batch, **kw}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="baf9257", help="git ref of the baseline code")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per configuration")
    p.add_argument("--sections", default="peaks,forward,train,compile,memory,onnx")
    p.add_argument("--quick", action="store_true", help="skip nside 256 and the paper-size memory/onnx runs")
    p.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help="results file (default: %(default)s); sections not measured are kept from it",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return

    sections = set(args.sections.split(","))
    base = _worktree(args.baseline)
    result: dict[str, Any] = {"load_start": os.getloadavg()}
    peaks = {t: measure_peaks(t) for t in args.threads} if "peaks" in sections else {}
    result["peaks_gflops"] = peaks

    forward_rows: list[dict[str, Any]] = []
    for threads in args.threads:
        for model, nside in FORWARD:
            if args.quick and nside > 128:
                continue
            if "forward" not in sections:
                break
            rounds = max(2, args.rounds // 2) if nside >= 256 else args.rounds
            ws = _workers(
                ("baseline fp32", base, _spec(model, nside, threads)),
                ("fp32", ROOT, _spec(model, nside, threads, flops=True)),
                ("fp32, retained heap", ROOT, _spec(model, nside, threads, retain_heap=True)),
                ("bf16", ROOT, _spec(model, nside, threads, precision="bf16")),
            )
            forward_rows += alternate(ws, rounds)
            print(f"forward {model} nside {nside} threads {threads} done", file=sys.stderr)
        if "compile" in sections:
            for model, nside in COMPILE:
                ws = _workers(
                    ("baseline fp32", base, _spec(model, nside, threads)),
                    ("compiled fp32", ROOT, _spec(model, nside, threads, compile=True)),
                    ("compiled bf16", ROOT, _spec(model, nside, threads, compile=True, precision="bf16")),
                )
                forward_rows += alternate(ws, args.rounds)
                print(f"compile {model} nside {nside} threads {threads} done", file=sys.stderr)
    train_rows: list[dict[str, Any]] = []
    if "train" in sections:
        for threads in args.threads:
            for model, nside, batch in TRAIN:
                train = _spec(model, nside, threads, "train", batch)
                kept = dict(train, retain_heap=True)  # HEAL_SWIN_RETAIN_FREED_MEMORY=1
                ws = _workers(
                    ("baseline fp32", base, train),
                    ("baseline fp32, retained heap", base, kept),
                    ("fp32", ROOT, dict(train, flops=True)),
                    ("fp32, retained heap", ROOT, kept),
                    ("fp32, THP", ROOT, dict(train, thp=True)),  # THP_MEM_ALLOC_ENABLE=1
                    ("bf16", ROOT, dict(train, precision="bf16")),
                    ("compiled fp32", ROOT, dict(train, compile=True)),
                )
                train_rows += alternate(ws, args.rounds)
                print(f"train {model} nside {nside} threads {threads} done", file=sys.stderr)
    memory = []
    if "memory" in sections and not args.quick:
        # A training step of the current code only (item 5); the heap is kept only in training.
        for label, tree, mode, retain in (
            ("baseline", base, "forward", False),
            ("current", ROOT, "forward", False),
            ("current", ROOT, "train", False),
            ("current, retained heap", ROOT, "train", True),
        ):
            memory.append(measure_memory(tree, label, mode, retain))
    onnx = []
    if "onnx" in sections and not args.quick:
        onnx = [measure_onnx(n, t, args.rounds) for t in args.threads for n in (64, 128)]
    result.update(forward=forward_rows, train=train_rows, memory=memory, onnx=onnx, load_end=os.getloadavg())
    command = " ".join(["python", "bench/bench_models.py", *(argv if argv is not None else sys.argv[1:])])
    result["meta"] = {
        "command": command,
        "baseline": args.baseline,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(),
        "cpu_capability": _cpu_capability(),
        "native_bf16": _native_bf16(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(report(result))
    result = merge_previous(result, sections, args.quick, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:  # rebuild the tables from a results file
        print(report(json.loads(Path(sys.argv[2] if len(sys.argv) > 2 else OUT).read_text())))
    else:
        main()
