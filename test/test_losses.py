"""DHPE training losses: zero at the target, positive off it, hand-computed values, Eq. 12."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.camera import crop_intrinsics, intrinsics_matrix, project
from hand_mesh_ros.nets.heatmaps import gaussian_heatmaps
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.training import (
    DHPELoss,
    DHPETargets,
    LossConfig,
    articulation_loss,
    denormalise_skeleton,
    feature_loss,
    heatmap_loss,
    laplacian_loss,
    mesh_edges,
    normalise_skeleton,
    refiner_loss,
    silhouette_loss,
    silhouette_weights,
    skeleton_frame,
    uniform_laplacian,
)

K100 = intrinsics_matrix(100.0, 100.0, 50.0, 50.0, dtype=torch.float64)
TETRA_FACES = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])


def _example_skeleton() -> torch.Tensor:
    """(1, 21, 3): every keypoint at the middle MCP (0, 0, 1) m except three, so that with
    K100 the projections span u in [50, 80], v in [-10, 50] -> g = 1.5 * 60 = 90 px."""
    pts = torch.zeros(1, 21, 3, dtype=torch.float64)
    pts[..., 2] = 1.0
    pts[0, 4] = torch.tensor([0.3, 0.0, 1.0], dtype=torch.float64)  # u = 80
    pts[0, 8] = torch.tensor([0.0, -0.6, 1.0], dtype=torch.float64)  # v = -10
    pts[0, 12] = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)  # behind the MCP by 1 m
    return pts


def test_feature_loss():
    f = torch.tensor([[1.0, 2.0], [0.5, 0.5]])
    assert_close(feature_loss(f, f), torch.zeros(2))
    assert_close(feature_loss(f, torch.zeros(2, 2)), [5.0, 0.5])


def test_heatmap_loss_sums_stages_and_respects_visibility():
    target = gaussian_heatmaps(torch.tensor([[[100.0, 80.0], [30.0, 40.0]]]))
    assert_close(heatmap_loss([target, target], target), [0.0])
    off = target.clone()
    off[0, 0, 3, 4] += 2.0  # keypoint 0: one cell off by 2 -> 4
    off[0, 1, 5, 5] += 1.0  # keypoint 1: one cell off by 1 -> 1
    assert_close(heatmap_loss([off, target, off], target), [10.0])
    assert_close(heatmap_loss([off], target, torch.tensor([[0.0, 1.0]])), [1.0])


def test_refiner_loss():
    target = torch.rand(2, 21, 2) * 224
    assert_close(refiner_loss([target] * 3, target), torch.zeros(2))
    off = target.clone()
    off[1, 7] += torch.tensor([3.0, 4.0])
    assert_close(refiner_loss([off, target, off], target), [0.0, 50.0], atol=1e-4)
    assert_close(refiner_loss([off], target, scale=5.0), [0.0, 1.0], atol=1e-6)
    vis = torch.ones(2, 21)
    vis[1, 7] = 0.0
    assert_close(refiner_loss([off], target, vis), [0.0, 0.0], atol=1e-4)


def test_normalisation_hand_computed():
    pts = _example_skeleton()
    frame = skeleton_frame(pts, K100)
    assert_close(frame.g, [90.0], atol=1e-9)
    assert_close(torch.stack((frame.u_mcp, frame.v_mcp, frame.z_mcp)), [[50.0], [50.0], [1.0]])
    n = normalise_skeleton(pts, K100)
    assert_close(n[0, 9], [0.0, 0.0, 0.0])
    assert_close(n[0, 4], [30.0 / 90.0, 0.0, 0.0], atol=1e-12)
    assert_close(n[0, 8], [0.0, -60.0 / 90.0, 0.0], atol=1e-12)
    assert_close(n[0, 12], [0.0, 0.0, 1.0 * 100.0 / (1.0 * 90.0)], atol=1e-12)


def test_normalisation_inverse_round_trip_float64():
    gen = torch.Generator().manual_seed(3)
    pts = torch.randn(4, 21, 3, generator=gen, dtype=torch.float64) * 0.05
    pts[..., 2] += torch.rand(4, 1, generator=gen, dtype=torch.float64) + 0.4
    ks = torch.stack([
        intrinsics_matrix(600.0 + 10 * i, 580.0 - 5 * i, 320.0 + i, 240.0 - i,
                          dtype=torch.float64) for i in range(4)
    ])
    frame = skeleton_frame(pts, ks)
    back = denormalise_skeleton(normalise_skeleton(pts, ks, frame), frame, ks)
    assert_close(back, pts, atol=1e-12, what="round trip")
    moved = denormalise_skeleton(normalise_skeleton(pts, ks) + 0.01, frame, ks)
    assert (moved - pts).abs().max() > 1e-4


def test_articulation_loss_values_and_invariances():
    target = _example_skeleton()
    assert_close(articulation_loss(target, target, K100), [0.0])
    pred = target.clone()
    pred[0, 4, 0] = 0.39  # u: 80 -> 89, normalised 30/90 -> 39/90
    assert_close(articulation_loss(pred, target, K100), [0.01], atol=1e-12)
    assert_close(articulation_loss(pred, target, K100, frame_from="each"), [0.01], atol=1e-12)
    shifted = target.clone()
    shifted[..., 0] += 0.05 * shifted[..., 2]  # every projection moves 5 px right
    assert_close(articulation_loss(shifted, target, K100), [21 * (5.0 / 90) ** 2], atol=1e-12)
    assert_close(articulation_loss(shifted, target, K100, frame_from="each"), [0.0], atol=1e-12)
    # Metric depth is not observed: a hand twice as large twice as far costs nothing.
    assert_close(articulation_loss(2.0 * target, target, K100), [0.0], atol=1e-12)
    vis = torch.ones(1, 21, dtype=torch.float64)
    vis[0, 4] = 0.0
    assert_close(articulation_loss(pred, target, K100, visibility=vis), [0.0], atol=1e-12)
    with pytest.raises(ValueError):
        articulation_loss(pred, target, K100, frame_from="bogus")


def test_silhouette_loss():
    sil = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    mask = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert_close(silhouette_loss(mask, mask), [0.0])
    assert_close(silhouette_loss(sil, mask), [(1.0 + 0.25) / 4.0])


def test_uniform_laplacian_and_loss():
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    assert mesh_edges(faces).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]
    tri = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    lap = uniform_laplacian(tri, mesh_edges(faces[:1]))
    assert_close(lap[0, 0], [-0.5, -0.5, 0.0])
    assert_close(lap[0, 1], [1.0, -0.5, 0.0])
    edges = mesh_edges(faces[:1])
    assert_close(laplacian_loss(tri, tri[0], edges), [0.0])
    moved = tri.clone()
    moved[0, 0] += torch.tensor([0.2, 0.0, 0.4])  # |d|^2 = 0.2: L changes d, -d/2, -d/2
    assert_close(laplacian_loss(moved, tri[0], edges), [1.5 * 0.2 / 3.0], atol=1e-7)
    # Placing mesh and reference with the same similarity transform keeps the loss at zero.
    rot = axis_angle_to_matrix(torch.tensor([[0.3, -1.0, 0.5]]))[0]
    placed = 1.7 * tri @ rot.T + torch.tensor([0.1, 0.2, 0.6])
    assert_close(laplacian_loss(placed, 1.7 * tri[0] @ rot.T, edges), [0.0], atol=1e-10)


def test_silhouette_weight_switch_at_threshold():
    target = torch.randint(0, 200, (3, 21, 2)).float()  # integers: the offsets below are exact
    pred = target.clone()
    pred[0, :, 0] += 4.9  # mean error 4.9 px < 5
    pred[1, :, 1] += 5.1  # 5.1 px
    pred[2, :, 0] += 3.0
    pred[2, :, 1] += 4.0  # 5.0 px: not below the threshold
    w = silhouette_weights(pred, target, weight=2.0, threshold_px=5.0)
    assert_close(w, [2.0, 0.0, 0.0])
    vis = torch.ones(3, 21)
    pred[1, 0, 1] += 100.0  # an outlier ...
    vis[1, 0] = 0.0  # ... that is not visible does not count
    w = silhouette_weights(pred, target, weight=2.0, threshold_px=5.2, visibility=vis)
    assert_close(w, [2.0, 2.0, 2.0])


class _Iteration:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Output:
    def __init__(self, heatmaps, feature, iterations):
        self.heatmaps, self.feature, self.iterations = heatmaps, feature, iterations


def _perfect_case():
    """A DHPE output that matches its targets exactly (tetrahedron mesh, zero crop camera)."""
    k = crop_intrinsics()
    template = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0],
                             [0.0, 0.0, 0.05]])
    kp3d = torch.randn(2, 21, 3) * 0.03 + torch.tensor([0.0, 0.0, 0.6])
    kp2d = project(kp3d, k)
    mask = (torch.rand(2, 16, 16) > 0.5).float()
    params = torch.zeros(2, 63)
    it = _Iteration(params=params, vertices=template.expand(2, 4, 3) + 0.6,
                    keypoints_3d=kp3d, keypoints_2d=kp2d, refined_keypoints_2d=kp2d,
                    silhouette=mask)
    heat = gaussian_heatmaps(kp2d)
    feature = torch.randn(2, 8)
    output = _Output((heat, heat), feature, (it, it))
    loss = DHPELoss(LossConfig(), faces=TETRA_FACES, template_vertices=template)
    return loss, output, DHPETargets(kp2d, kp3d, mask=mask), feature


def test_total_loss_zero_at_target_and_eq12_per_sample():
    loss, output, targets, feature = _perfect_case()
    terms = loss(output, targets, masked_feature=feature)
    assert_close(terms.total, 0.0, atol=1e-9)
    assert_close(terms.silhouette_weights, [1.0, 1.0])
    # Sample 0 projects 2 px off (below tau = 5 px), sample 1 12 px off; both silhouettes wrong.
    it = output.iterations[-1]
    shift = torch.tensor([2.0, 12.0])[:, None, None] * torch.tensor([1.0, 0.0])
    bad_sil = 1.0 - it.silhouette
    it2 = _Iteration(**{**it.__dict__, "keypoints_2d": it.keypoints_2d + shift,
                        "silhouette": bad_sil})
    output2 = _Output(output.heatmaps, output.feature, (it, it2))
    terms = loss(output2, targets, masked_feature=feature)
    assert_close(terms.silhouette_weights, [1.0, 0.0])
    assert_close(terms.silhouette, 1.0)  # every pixel wrong by 1
    assert_close(terms.total, 0.5, atol=1e-6)  # mean over the batch of [1 * 1, 0 * 1]
    const = DHPELoss(LossConfig(constant_silhouette_weight=True, silhouette=3.0),
                     faces=TETRA_FACES, template_vertices=loss.template)
    assert_close(const(output2, targets, feature).total, 3.0, atol=1e-6)
    # Feature and heat-map terms enter with their weights.
    zero_heat = tuple(torch.zeros_like(h) for h in output.heatmaps)
    heat_only = _Output(zero_heat, output.feature, output.iterations)
    expected = heatmap_loss(zero_heat, output.heatmaps[-1]).mean()
    terms = loss(heat_only, targets, masked_feature=torch.zeros_like(feature))
    assert_close(terms.heatmap, expected, atol=1e-5)
    assert_close(terms.feature, (feature**2).sum(1).mean(), atol=1e-5)
    assert_close(terms.total, expected + (feature**2).sum(1).mean(), atol=1e-4)
