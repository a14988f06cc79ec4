"""The 224 crop: box rule, K update (projection property), pixel mapping, left -> right flip,
and batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.camera import CROP_SIZE
from hand_mesh_ros.datasets import (
    CropJitter,
    HandSample,
    SyntheticConfig,
    SyntheticGenerator,
    collate,
    crop_box,
    crop_sample,
)
from hand_mesh_ros.datasets.files import project_points
from hand_mesh_ros.metrics import mask_iou
from hand_mesh_ros.render import rasterize

H, W = 300, 400


def gradient_sample(side: str, rng: np.random.Generator, *, with_mask: bool = True):
    """A hand-like point set in front of a camera over an image whose color encodes (u, v)."""
    v, u = np.mgrid[0:H, 0:W]
    image = np.stack((u * 0.6, v * 0.8, np.full_like(u, 50)), axis=-1).round().astype(np.uint8)
    K = np.array([[420.0, 2.0, 190.0], [0.0, 410.0, 160.0], [0.0, 0.0, 1.0]])  # with skew
    kp3d = np.c_[rng.uniform(-0.05, 0.05, (21, 2)), rng.uniform(0.5, 0.6, 21)]
    mask = None
    if with_mask:
        mask = np.zeros((H, W), bool)
        mask[120:200, 150:260] = True
    return HandSample(
        image=image,
        K=K,
        keypoints_2d=project_points(kp3d, K),
        visibility=np.ones(21),
        keypoints_3d=kp3d,
        mask=mask,
        side=side,
        source=f"test:{side}",
    )


@pytest.mark.parametrize("side", ["right", "left"])
def test_box_rule_and_projection_property(side):
    rng = np.random.default_rng(1)
    sample = gradient_sample(side, rng)
    crop = crop_sample(sample)
    assert crop.image.shape == (3, CROP_SIZE, CROP_SIZE) and crop.image.dtype == np.float32
    assert crop.flipped == (side == "left") and crop.side == side
    projected = project_points(crop.keypoints_3d.astype(np.float64), crop.K.astype(np.float64))
    assert_close(projected, crop.keypoints_2d, atol=1e-3, what="crop K @ 3D vs crop 2D")
    low, high = crop.keypoints_2d.min(0), crop.keypoints_2d.max(0)
    assert_close((low + high) / 2, [(CROP_SIZE - 1) / 2] * 2, atol=1e-3, what="box centre")
    assert_close((high - low).max(), CROP_SIZE / 1.5, atol=1e-3, what="1.5 x keypoint box")
    expected_3d = sample.keypoints_3d * ([-1, 1, 1] if side == "left" else 1)
    assert_close(crop.keypoints_3d, expected_3d, atol=1e-6, what="3D (mirrored for left)")


@pytest.mark.parametrize("side", ["right", "left"])
def test_crop_pixels_come_from_the_mapped_image_positions(side):
    sample = gradient_sample(side, np.random.default_rng(2))
    crop = crop_sample(sample)
    inverse = np.linalg.inv(crop.crop_from_image)
    ys, xs = np.mgrid[20:200:15, 20:200:15]
    source = np.c_[xs.ravel(), ys.ravel(), np.ones(xs.size)] @ inverse.T
    inside = (source[:, 0] > 1) & (source[:, 0] < W - 2)
    inside &= (source[:, 1] > 1) & (source[:, 1] < H - 2)
    assert inside.sum() > 50
    expected = np.stack((source[:, 0] * 0.6, source[:, 1] * 0.8, np.full(len(source), 50.0)), 1)
    actual = crop.image[:, ys.ravel(), xs.ravel()].T * 255.0
    assert_close(actual[inside], expected[inside], atol=1.0, what="warped color")
    # the mask's corners land where A puts them
    corner = crop.crop_from_image @ [150.0, 120.0, 1.0]
    inner = np.round(corner[:2] + np.where(crop.flipped, [-2, 2], [2, 2])).astype(int)
    outer = np.round(corner[:2] + np.where(crop.flipped, [2, -2], [-2, -2])).astype(int)
    assert crop.mask[inner[1], inner[0]] == 1.0 and crop.mask[outer[1], outer[0]] == 0.0


def test_synthetic_crop_masks_match_renders_with_crop_camera():
    """Render each crop's hand with the crop K (right model, params as returned, the left
    hand mirrored): the silhouette matches the cropped mask."""
    generator = SyntheticGenerator(SyntheticConfig(image_size=(160, 200), left_probability=0.5))
    model = generator.model
    sides = set()
    for index in range(4):
        sample = generator.sample(21, index)
        crop = crop_sample(sample)
        sides.add(sample.side)
        params = {
            k: torch.as_tensor(getattr(crop, k))[None]
            for k in ("pose", "shape", "global_orient", "transl")
        }
        with torch.no_grad():
            out = model(**params)
            render = rasterize(
                out.vertices, model.faces, torch.as_tensor(crop.K), (CROP_SIZE, CROP_SIZE)
            )
        assert_close(out.keypoints[0], crop.keypoints_3d, atol=1e-5, what="params -> 3D")
        iou = mask_iou(render.mask.float(), torch.as_tensor(crop.mask)[None])[0]
        assert float(iou) > 0.9, f"{sample.source} ({sample.side}): IoU {float(iou):.3f}"
    assert sides == {"left", "right"}


def test_jitter_is_seeded_and_keeps_the_projection_property():
    sample = gradient_sample("right", np.random.default_rng(3))
    jitter = CropJitter(scale_range=(0.8, 1.2), max_shift=0.2)
    a = crop_sample(sample, jitter=jitter, rng=np.random.default_rng(5))
    b = crop_sample(sample, jitter=jitter, rng=np.random.default_rng(5))
    c = crop_sample(sample, jitter=jitter, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.allclose(a.keypoints_2d, c.keypoints_2d)
    projected = project_points(c.keypoints_3d.astype(float), c.K.astype(float))
    assert_close(projected, c.keypoints_2d, atol=1e-3)
    with pytest.raises(ValueError, match="rng"):
        crop_sample(sample, jitter=jitter)
    with pytest.raises(ValueError, match="max_shift"):
        CropJitter(max_shift=0.6)


def test_box_errors():
    kp = np.zeros((21, 2))
    with pytest.raises(ValueError, match="visible"):
        crop_box(kp, np.r_[1.0, np.zeros(20)])
    with pytest.raises(ValueError, match="too small"):
        crop_box(kp, np.ones(21))
    centre, side = crop_box(np.r_[np.zeros((20, 2)), [[10.0, 4.0]]], np.ones(21))
    assert_close(centre, [5.0, 2.0]) and side == pytest.approx(15.0)


def test_collate_fills_missing_with_zeros_and_flags():
    rng = np.random.default_rng(4)
    full = crop_sample(gradient_sample("right", rng))
    bare = gradient_sample("left", rng, with_mask=False)
    bare = HandSample(
        image=bare.image,
        K=bare.K,
        keypoints_2d=bare.keypoints_2d,
        visibility=bare.visibility,
        keypoints_3d=None,
        mask=None,
        side="left",
        source="bare",
    )
    crops = [full, crop_sample(bare)]
    loader = torch.utils.data.DataLoader(crops, batch_size=2, collate_fn=collate)
    batch = next(iter(loader)).to("cpu")
    assert batch.image.shape == (2, 3, CROP_SIZE, CROP_SIZE) and batch.image.dtype == torch.float32
    assert batch.mask.shape == (2, CROP_SIZE, CROP_SIZE)
    assert batch.has_mask.tolist() == [True, False] and batch.has_3d.tolist() == [True, False]
    assert batch.has_params.tolist() == [False, False]
    assert batch.flipped.tolist() == [False, True] and batch.sides == ("right", "left")
    assert float(batch.mask[1].abs().sum()) == 0 and float(batch.keypoints_3d[1].abs().sum()) == 0
    assert_close(batch.keypoints_2d[0], full.keypoints_2d, atol=0)
    assert batch.K.shape == (2, 3, 3) and batch.pose.shape == (2, 45)
    with pytest.raises(ValueError, match="empty"):
        collate([])
