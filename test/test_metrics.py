"""Metrics on hand-computed cases."""

import math

import torch
from helpers import assert_close

from hand_mesh_ros import metrics
from hand_mesh_ros.rotations import axis_angle_to_matrix


def test_procrustes_recovers_similarity_transform():
    target = torch.randn(3, 21, 3, dtype=torch.float64)
    rot = axis_angle_to_matrix(torch.randn(3, 3, dtype=torch.float64))
    source = 0.3 * target @ rot.transpose(1, 2) + torch.randn(3, 1, 3, dtype=torch.float64)
    assert_close(metrics.procrustes_align(source, target), target, atol=1e-9)
    assert_close(metrics.pa_mpjpe(source, target), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert metrics.mpjpe(source, target).min() > 0.1


def test_procrustes_does_not_reflect():
    target = torch.randn(1, 21, 3, dtype=torch.float64)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert metrics.pa_mpjpe(mirrored, target).item() > 1e-3


def test_mpjpe_root_relative_and_iou_and_auc():
    a = torch.zeros(1, 2, 3)
    b = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]])
    assert math.isclose(metrics.mpjpe(a, b).item(), 2.5)
    assert math.isclose(metrics.root_relative_mpjpe(a + 7, b).item(), 2.5)
    m1 = torch.zeros(1, 4, 4)
    m2 = torch.zeros(1, 4, 4)
    m1[0, :2] = 1
    m2[0, 1:3] = 1
    assert math.isclose(metrics.mask_iou(m1, m2).item(), 4 / 12)
    errors = torch.tensor([10.0, 30.0])
    # PCK is 0.5 on [30, 50] and 0.5 - 1 ... on [20, 50]: area = (10*0.5 + 20*1)/30 approx
    assert abs(metrics.auc(errors, 20.0, 50.0, steps=3001) - (10 * 0.5 + 20 * 1.0) / 30) < 2e-3
