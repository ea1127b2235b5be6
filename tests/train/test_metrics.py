"""Metrics against hand-computed confusion matrices and depth values; losses on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from heal_swin.train.losses import DepthLoss, DepthNormalizer, SegmentationLoss, class_weights_from_counts
from heal_swin.train.metrics import (
    DEPTH_KEYS,
    ConfusionMatrix,
    DepthErrors,
    chamfer_distance,
    iou_from_confusion,
    segmentation_summary,
)


def test_confusion_and_iou_by_hand():
    # target: 0 0 1 1 2 2 255 ; pred: 0 1 1 1 2 0 2
    target = torch.tensor([0, 0, 1, 1, 2, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    m = cm.compute().numpy()
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    iou, miou = iou_from_confusion(m)
    # class 0: TP 1, FP 1 (from 2), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    np.testing.assert_allclose(iou, [1 / 3, 2 / 3, 1 / 2])
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # Without void (class 0): rows of target 0 dropped; class 1: TP 2, FP 0 -> 1; class 2: TP 1, FN 1 -> 1/2.
    iou_nv, miou_nv = iou_from_confusion(m, exclude=(0,))
    assert math.isnan(iou_nv[0]) and iou_nv[1] == pytest.approx(1.0) and iou_nv[2] == pytest.approx(0.5)
    assert miou_nv == pytest.approx(0.75)


def test_absent_class_is_nan_and_left_out():
    m = np.array([[5, 0, 0], [0, 3, 0], [0, 0, 0]])
    iou, miou = iou_from_confusion(m)
    assert math.isnan(iou[2]) and miou == pytest.approx(1.0)


def test_summary_majority_baseline():
    m = np.array([[8, 0], [2, 0]])  # everything predicted 0; class 0 is the majority
    s = segmentation_summary(m, ["void", "road"], void_class=None)
    assert s["majority_class"] == "void"
    assert s["majority_baseline_miou"] == pytest.approx(s["miou"])  # it *is* the majority predictor
    assert s["pixel_accuracy"] == pytest.approx(0.8)


def test_depth_errors_by_hand():
    t = torch.tensor([1.0, 2.0, 4.0, float("inf"), 0.0])
    p = torch.tensor([1.0, 3.0, 2.0, 5.0, 1.0])
    one = DepthErrors()
    one.update(p, t)
    e = one.compute()
    assert set(e) == set(DEPTH_KEYS)
    # valid: (1,1), (3,2), (2,4)
    assert e["abs_rel"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert e["sq_rel"] == pytest.approx((0 + 1 / 2 + 4 / 4) / 3)
    assert e["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert e["rmse_log"] == pytest.approx(math.sqrt((0 + math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3))
    assert (
        e["delta1"] == pytest.approx(1 / 3)
        and e["delta2"] == pytest.approx(2 / 3)
        and e["delta3"] == pytest.approx(2 / 3)
    )
    acc = DepthErrors()
    acc.update(p[:2], t[:2])
    acc.update(p[2:], t[2:])
    for k, v in acc.compute().items():
        assert v == pytest.approx(e[k])


def test_chamfer_distance():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    b = np.array([[0.0, 0, 0], [1, 0, 0], [1, 2, 0]])
    # a->b: 0, 0; b->a: 0, 0, 2 -> 0.5 * (0 + 2/3)
    assert chamfer_distance(a, b) == pytest.approx(1 / 3)
    assert chamfer_distance(a, a) == 0.0


def test_class_weights():
    w = class_weights_from_counts(np.array([900, 90, 10, 0]))
    assert w[3] == 0 and w[0] < w[1] < w[2]
    assert float(w[:3].mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive sum"):
        class_weights_from_counts(np.zeros(3))


def test_segmentation_loss_ignores_and_weights():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]]).transpose(1, 2)  # (1, K=2, N=2)
    target = torch.tensor([[0, 255]])
    loss = SegmentationLoss(ignore_index=255)(logits, target)
    assert float(loss) == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))
    all_ignored = SegmentationLoss()(logits.requires_grad_(), torch.tensor([[255, 255]]))
    assert float(all_ignored) == 0.0
    all_ignored.backward()


def test_depth_loss_and_normalizer():
    norm = DepthNormalizer.fit(np.array([1.0, np.e, np.e**2, np.inf]))
    assert norm.log_mean == pytest.approx(1.0)
    d = torch.tensor([[1.0, 5.0, float("inf")]])
    z = norm.normalize(d.clamp_max(100))
    torch.testing.assert_close(norm.denormalize(z)[0, :2], d[0, :2])
    loss = DepthLoss(norm, "mse")
    perfect = norm.normalize(torch.tensor([[1.0, 5.0, 1.0]]))[:, None]
    assert float(loss(perfect, d)) == pytest.approx(0.0, abs=1e-10)
    assert float(loss(perfect + 1.0, d)) == pytest.approx(1.0)
    assert float(DepthLoss(norm, "l1")(perfect - 2.0, d)) == pytest.approx(2.0)
