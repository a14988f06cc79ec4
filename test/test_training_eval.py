"""Evaluation metrics on hand-made inputs: PCK/AUC, the paper's alignment, root-relative
errors, mask scores; and the annotated-image dataset adapter."""

from __future__ import annotations

import pytest
import torch
from helpers import SHARED_DATA, assert_close

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix
from hand_mesh_ros.training.eval_metrics import (
    aligned_prediction,
    bone_parents,
    joint_errors_mm,
    mask_scores,
    summarise_errors,
    total_bone_length,
)


@pytest.fixture(scope="module")
def skeleton():
    """A (2, 21, 3) hand skeleton 0.5-0.6 m in front of a camera, and that camera's K."""
    model = load_hand_model("right")
    pose = torch.zeros(2, 45)
    pose[1, 5] = 0.8  # bend one joint of the second hand
    hand = model(pose=pose, transl=torch.tensor([[0.02, -0.01, 0.5], [-0.03, 0.02, 0.6]]))
    return hand.keypoints.double(), intrinsics_matrix(600, 600, 320, 240, dtype=torch.float64)


def test_auc_and_pck_of_hand_made_errors():
    # a third of the keypoints at 10 mm, a third at 30 mm, a third at 60 mm
    errors = torch.tensor([10.0, 30.0, 60.0]).repeat_interleave(7)[None].expand(3, 21)
    summary = summarise_errors(errors)
    assert summary.mean_mm == pytest.approx(100.0 / 3.0)
    assert summary.median_mm == 30.0
    # PCK over 20-50 mm: 1/3 up to 30 mm, 2/3 from 30 mm: (10/3 + 20 * 2/3) / 30
    assert summary.auc_20_50 == pytest.approx((10 / 3 + 40 / 3) / 30, abs=0.01)
    # over 0-50 mm: 0 below 10, 1/3 on [10, 30), 2/3 on [30, 50]
    assert summary.auc_0_50 == pytest.approx((20 / 3 + 40 / 3) / 50, abs=0.01)
    curve = dict(zip(summary.pck_thresholds_mm, summary.pck, strict=True))
    assert curve[9.0] == 0.0 and curve[10.0] == pytest.approx(1 / 3)
    assert curve[50.0] == pytest.approx(2 / 3)
    perfect = summarise_errors(torch.zeros(2, 21))
    assert perfect.auc_20_50 == 1.0 and perfect.auc_0_50 == 1.0


def test_visibility_selects_the_counted_keypoints():
    errors = torch.full((1, 21), 100.0)
    errors[0, :5] = 1.0
    visibility = torch.zeros(1, 21)
    visibility[0, :5] = 1.0
    assert summarise_errors(errors, visibility).mean_mm == 1.0
    with pytest.raises(ValueError, match="no keypoint"):
        summarise_errors(errors, torch.zeros(1, 21))
    with pytest.raises(ValueError, match=r"\(N, 21\)"):
        summarise_errors(torch.zeros(4))


def test_aligned_protocol_removes_depth_and_scale_only(skeleton):
    target, K = skeleton
    # the same hand twice as large and twice as far (the same image): the paper's inverse
    # normalisation recovers the ground truth exactly, also from another pinhole camera
    far = 2.0 * target
    assert_close(aligned_prediction(far, K, target, K), target, atol=1e-9, what="same camera")
    crop_K = intrinsics_matrix(300, 300, 63.5, 63.5, dtype=torch.float64)
    errors = joint_errors_mm(far, crop_K, target, K)
    assert errors["aligned"].max() < 1e-6 and errors["pa"].max() < 1e-6
    # articulation errors remain: the other hand's skeleton
    swapped = joint_errors_mm(target.flip(0), K, target, K)
    assert swapped["aligned"].max() > 10.0


def test_root_relative_protocol_is_scale_and_translation_free(skeleton):
    target, K = skeleton
    pred = 1.7 * target + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    errors = joint_errors_mm(pred, K, target, K)
    assert errors["root_relative"].max() < 1e-6
    assert errors["aligned"].shape == (2, 21)


def test_bones_form_finger_chains(skeleton):
    parents = bone_parents()
    assert len(parents) == 21 and parents[0] == 0
    assert parents[1:5] == (0, 1, 2, 3) and parents[17:21] == (0, 17, 18, 19)
    target, _ = skeleton
    assert_close(total_bone_length(2 * target), 2 * total_bone_length(target), atol=1e-12)
    assert 0.3 < float(total_bone_length(target)[0]) < 1.0  # metres, twenty bones


def test_mask_scores_on_known_masks():
    pred = torch.zeros(3, 4, 4)
    target = torch.zeros(3, 4, 4)
    pred[0, :2] = 1  # 8 px
    target[0, 1:3] = 1  # 8 px, 4 shared
    target[1, 0, 0] = 1  # prediction empty, target not
    scores = mask_scores(pred, target)
    assert_close(scores["iou"], [4 / 12, 0.0, 1.0])
    assert_close(scores["precision"], [0.5, 0.0, 1.0])
    assert_close(scores["recall"], [0.5, 0.0, 1.0])


@pytest.mark.skipif(
    not (SHARED_DATA / "hands" / "annotations.jsonl").is_file(), reason="shared data missing"
)
def test_annotation_dataset_reads_the_shared_samples():
    from hand_mesh_ros.training.annotations import AnnotationDataset

    dataset = AnnotationDataset(SHARED_DATA / "hands" / "annotations.jsonl")
    samples = [dataset[i] for i in range(len(dataset))]
    with_3d = [s for s in samples if s.keypoints_3d is not None]
    assert len(with_3d) >= 1 and all(s.side in ("left", "right") for s in samples)
    for s in with_3d:  # metres, and K projects them onto the 2D annotation
        assert 0.2 < s.keypoints_3d[:, 2].mean() < 3.0
        uv = s.keypoints_3d @ s.K.T
        assert abs(uv[:, :2] / uv[:, 2:] - s.keypoints_2d).max() < 1.0
