"""Incidence-angle binning: angles from independent trigonometry, bins that partition the totals."""

from __future__ import annotations

import numpy as np
import torch

from heal_swin.train.incidence import INCIDENCE_EDGES_DEG, BinnedConfusion, BinnedDepthErrors, incidence_deg
from heal_swin.train.metrics import DepthErrors


def test_incidence_angle_of_known_rays() -> None:
    deg = np.array([0.0, 10.0, 45.0, 89.0, 95.0, 135.0])
    # Rays at polar angle t and arbitrary azimuth and length.
    az = np.linspace(0, 5, len(deg))
    t = np.radians(deg)
    rays = 3.7 * np.stack([np.sin(t) * np.cos(az), np.sin(t) * np.sin(az), np.cos(t)], axis=-1)
    np.testing.assert_allclose(incidence_deg(rays), deg, atol=1e-9)


def test_binned_confusion_partitions_the_total_and_bins_by_angle() -> None:
    rng = np.random.default_rng(0)
    n, k = 5000, 4
    pred, target = rng.integers(0, k, n), rng.integers(0, k, n)
    target[::17] = 255  # ignored
    angle = rng.uniform(0, 100, n)
    binned = BinnedConfusion(k, 255)
    binned.update(pred, target, angle)
    ok = target != 255
    total = np.zeros((k, k), np.int64)
    np.add.at(total, (target[ok], pred[ok]), 1)
    np.testing.assert_array_equal(binned.counts.sum(0), total)
    # Bin 0 = [0, 30): exactly the pixels below 30 degrees.
    sel = ok & (angle < 30)
    low = np.zeros((k, k), np.int64)
    np.add.at(low, (target[sel], pred[sel]), 1)
    np.testing.assert_array_equal(binned.counts[0], low)
    rows = binned.summary([f"c{i}" for i in range(k)])
    assert [r["lo_deg"] for r in rows] == list(INCIDENCE_EDGES_DEG[:-1]) and sum(
        r["pixels"] for r in rows
    ) == ok.sum()


def test_binned_depth_errors_match_depth_errors_on_each_bin() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    target = rng.uniform(1, 50, n).astype(np.float32)
    pred = (target * rng.uniform(0.8, 1.2, n)).astype(np.float32)
    valid = rng.random(n) > 0.1
    angle = rng.uniform(0, 100, n)
    binned = BinnedDepthErrors()
    binned.update(pred, target, valid, angle)
    rows = binned.summary()
    sel = valid & (angle >= 60) & (angle < 75)
    ref = DepthErrors(sync_on_compute=False)
    ref.update(
        torch.from_numpy(pred[sel]),
        torch.from_numpy(target[sel]),
        torch.ones(int(sel.sum()), dtype=torch.bool),
    )
    want = ref.compute()
    row = next(r for r in rows if r["lo_deg"] == 60)
    assert row["pixels"] == sel.sum()
    for key in ("abs_rel", "rmse", "delta1"):
        np.testing.assert_allclose(row[key], want[key], rtol=1e-6)


def test_pixels_on_a_bin_edge_fall_in_the_upper_bin_whatever_the_last_bit() -> None:
    import healpy as hp

    edge = np.float64(60.0)
    wobble = np.array([np.nextafter(edge, 0), edge, np.nextafter(edge, 100)])  # one ulp either side
    binned = BinnedConfusion(2, 255)
    binned.update(np.zeros(3, np.int64), np.zeros(3, np.int64), wobble)
    assert binned.counts.sum((1, 2)).tolist() == [0, 0, 3, 0, 0]  # [60, 75), as the half-open bins say
    # The HEALPix ring at z = 0.5 (nside 32: ring 40, 128 pixels) lies on the 60° edge, and its pixel
    # vectors' arccos lands a bit either side depending on the CPU's rounding.
    nside = 32
    ring_z = (2 * nside - 40) * 2 / (3 * nside)  # HEALPix equatorial ring 40
    pix = np.flatnonzero(np.isclose(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)), nest=True)[2], ring_z))
    assert ring_z == 0.5 and len(pix) == 4 * nside
    rays = np.stack(hp.pix2vec(nside, pix, nest=True), axis=-1)
    binned = BinnedConfusion(2, 255)
    binned.update(np.zeros(len(pix), np.int64), np.zeros(len(pix), np.int64), incidence_deg(rays))
    assert binned.counts.sum((1, 2)).tolist() == [0, 0, len(pix), 0, 0]
