"""What bench/bench_s2cnn.py measures: one module timed in a worker, transform sizes, equivariance.

    python bench/bench_s2cnn_measure.py '{"kind": "S2Convolution", "b": 8, "threads": 1, "repeats": 3}'

The script runs the per-module measurements in fresh processes (``bench_s2cnn.py --worker SPEC`` calls
``worker`` here) and lays out their tables; this module is what those processes and the in-process
sections measure. Running it directly measures one spec, as a worker would, and prints the JSON row.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import numpy as np

PAPER_SCHEDULE = (42, 35, 27, 20, 27, 35, 42)  # Gerken et al. 2022, with b_in = b_out = 50
FEATURES = (11, 12, 13, 14, 13, 12, 11)


# ------------------------------------------------------------------ helpers
def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def scaled_schedule(b: int) -> tuple[int, ...]:
    """The paper's bandwidth schedule scaled to input bandwidth b (even bandwidths: quarter turns stay exact)."""
    return tuple(_even(s * b / 50) for s in PAPER_SCHEDULE)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ worker
def _build(spec: dict):
    import torch

    from heal_swin.models.s2cnn import S2CNNDense, S2Convolution, SO3Convolution, SO3ToS2

    b, c = spec.get("b"), spec.get("channels", 12)
    kind = spec["kind"]
    if kind == "S2Convolution":
        return S2Convolution(3, c, b, b), torch.randn(1, 3, 2 * b, 2 * b)
    if kind == "SO3Convolution":
        return SO3Convolution(c, c, b, b), torch.randn(1, c, 2 * b, 2 * b, 2 * b)
    if kind == "SO3ToS2":
        return SO3ToS2(c, 10, b, b), torch.randn(1, c, 2 * b, 2 * b, 2 * b)
    if kind == "registry":
        from heal_swin.models.registry import create_model

        model = create_model(spec["name"])
        return model, torch.randn(1, model.in_chans, model.grid.npix)
    if kind == "model":
        model = S2CNNDense(
            spec["nside"],
            in_chans=3,
            out_chans=10,
            b_in=b,
            bandwidths=scaled_schedule(b),
            features=FEATURES,
            b_out=b,
        )
        return model, torch.randn(1, 3, model.grid.npix)
    raise ValueError(kind)


def worker(spec: dict) -> dict:
    """Build ``spec``'s module, then time forward and forward+backward and record their peak RSS."""
    import torch

    from heal_swin.models.s2cnn.so3 import wigner_d_grid

    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    module, x = _build(spec)
    build_s = time.perf_counter() - t0
    wigner_d_grid.cache_clear()  # drop the float64 tables: they are not needed to run
    gc.collect()
    out = {
        **spec,
        "build_s": build_s,
        "params": sum(p.numel() for p in module.parameters()),
        "buffers_mb": sum(b.numel() * b.element_size() for b in module.buffers()) / 2**20,
    }

    def timed(fn, repeats):
        fn()  # warm-up
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts), statistics.median(ts)

    def fwd():
        with torch.no_grad():
            module(x)

    def fwd_bwd():
        module.zero_grad(set_to_none=True)
        module(x).square().mean().backward()

    for name, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
        gc.collect()
        base = _rss_mb()
        ok = _reset_hwm()
        out[f"{name}_s"], out[f"{name}_median_s"] = timed(fn, spec["repeats"])
        out[f"{name}_peak_mb"] = _hwm_mb() if ok else float("nan")
        out[f"{name}_extra_mb"] = out[f"{name}_peak_mb"] - base
    return out


# ------------------------------------------------------------ transform sizes
def transform_table(bandwidths: list[int]) -> list[dict]:
    """Buffer sizes of the S2 / SO(3) transforms and the Wigner-d build time per bandwidth."""
    from heal_swin.models.s2cnn import transform_sizes
    from heal_swin.models.s2cnn.so3 import wigner_d_grid

    rows = []
    for b in bandwidths:
        wigner_d_grid.cache_clear()
        t = time.perf_counter()
        wigner_d_grid(b, b)
        build = time.perf_counter() - t
        sizes = transform_sizes(b, b)
        rows.append(
            {
                "b": b,
                "wigner_build_s": build,
                **{f"{k}_mb": v * 4 / 2**20 for k, v in sizes.items()},
                "so3_signal_mb_per_channel": (2 * b) ** 3 * 4 / 2**20,
            }
        )
    wigner_d_grid.cache_clear()
    return rows


# --------------------------------------------------------------- equivariance
def _random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) ZYZ Euler angles of Haar-random rotations (via uniform unit quaternions)."""
    from heal_swin.models.s2cnn.so3 import matrix_to_euler

    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    r = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    return np.stack(matrix_to_euler(r), -1)


def _rotate_s2(x, angles, analysis, synthesis):
    """Exact rotation f -> f(R^{-1} ·) of a band-limited S2 signal: f̂'_k = Σ_m D^l_km(R) f̂_m."""
    import torch

    from heal_swin.models.s2cnn.so3 import wigner_D

    re, im = analysis(x)
    c = re.double().numpy() + 1j * im.double().numpy()  # (B, C, L, M)
    d = wigner_D(re.shape[2], *angles)[0]  # (L, M, M)
    c = np.einsum("lkm,bclm->bclk", d, c)
    return synthesis(torch.from_numpy(c.real).to(x.dtype), torch.from_numpy(c.imag).to(x.dtype))


def _weighted_rel(a, b, w):
    import torch

    w = torch.as_tensor(w, dtype=a.dtype)[:, None]
    return float(torch.sqrt(((a - b) ** 2 * w).sum()) / torch.sqrt((b**2 * w).sum()))


def equivariance(bandwidths: list[int], n_rot: int, seed: int = 0) -> dict:
    """Relative errors of layer stacks and the model core under random SO(3) rotations and a quarter turn."""
    import torch
    from torch import nn

    from heal_swin.models.s2cnn import (
        S2Analysis,
        S2CNNDense,
        S2Convolution,
        S2Synthesis,
        SO3Convolution,
        SO3ToS2,
        dh_weights,
    )

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows = []
    for b in bandwidths:
        c = 8
        s2, so3, head = S2Convolution(3, c, b, b), SO3Convolution(c, c, b, b), SO3ToS2(c, 4, b, b)

        linear = nn.Sequential(s2, so3, head)
        two_layer = nn.Sequential(s2, nn.ReLU(), so3, nn.ReLU(), head)

        model = S2CNNDense(4, b_in=b, bandwidths=scaled_schedule(b), features=FEATURES, b_out=b, out_chans=4)
        nets = {
            "linear (S2->SO3->SO3->S2)": linear,
            "2 ReLU layers": two_layer,
            "model core (DH->DH)": model.forward_dh,
        }
        an, syn = S2Analysis(b), S2Synthesis(b)
        # Inputs band-limited to l < b/2 (smooth relative to the grid), random spectra.
        lim = max(2, b // 2)
        band = S2Synthesis(lim, b)
        x = band(*S2Analysis(b, lim)(torch.randn(1, 3, 2 * b, 2 * b)))
        w = torch.from_numpy(np.array(dh_weights(b)))
        row = {"b": b, "input_bandlimit": lim}
        with torch.no_grad():
            for name, net in nets.items():
                y = net(x)
                errs = []
                for ang in _random_rotations(n_rot, rng):
                    y_rot_in = net(_rotate_s2(x, ang, an, syn))
                    y_rot_out = _rotate_s2(y, ang, an, syn)
                    errs.append(_weighted_rel(y_rot_in, y_rot_out, w))
                row[name] = {"median": statistics.median(errs), "min": min(errs), "max": max(errs)}
                # Grid-exact quarter turn about the pole (α shift by b/2 samples).
                qt = net(torch.roll(x, b // 2, dims=-1))
                row[name]["quarter_turn"] = float(
                    (qt - torch.roll(y, b // 2, dims=-1)).abs().max() / y.abs().max()
                )
        rows.append(row)
        print(
            f"  equivariance b={b}: "
            + ", ".join(f"{k}: {v['median']:.2e}" for k, v in row.items() if isinstance(v, dict))
        )
    return {"rows": rows, "n_rotations": n_rot}


def model_quarter_turn(bandwidths: list[int], nside: int = 32) -> list[dict]:
    """Full HEALPix-in/HEALPix-out model under a quarter turn about the pole (a HEALPix permutation)."""
    import healpy as hp
    import torch

    from heal_swin.models.s2cnn import S2CNNDense

    out = []
    for b in bandwidths:
        torch.manual_seed(0)
        model = S2CNNDense(nside, b_in=b, bandwidths=scaled_schedule(b), features=FEATURES, b_out=b).eval()
        grid = model.grid
        v = grid.vectors()
        src = np.stack([v[:, 1], -v[:, 0], v[:, 2]], -1)  # Rz(-π/2) v
        perm = torch.from_numpy(grid.local_index(hp.vec2pix(grid.nside, *src.T, nest=True)))
        x = torch.randn(1, 3, grid.npix)
        with torch.no_grad():
            a, ref = model(x[..., perm]), model(x)[..., perm]
        out.append({"b": b, "nside": nside, "rel_max_err": float((a - ref).abs().max() / ref.abs().max())})
    return out


def main() -> None:
    """Measure one spec in this process and print its JSON row (what ``bench_s2cnn.py --worker`` prints)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="JSON: kind (S2Convolution, SO3Convolution, SO3ToS2, model, registry), b")
    print(json.dumps(worker(json.loads(ap.parse_args().spec))))


if __name__ == "__main__":
    main()
