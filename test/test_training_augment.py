"""Self-data augmentation (Sec. 3.5): count and shapes, labels consistent with the new
parameters' projection and render, the framing, the parameter ranges, the texture taken from
the seed image, determinism, and the pool's ring buffer and state round trip."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import project
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.render import render_silhouette
from hand_mesh_ros.training.losses import BOX_SCALE
from hand_mesh_ros.training.self_augment import (
    AugmentConfig,
    AugmentPool,
    augment_from_predictions,
    random_rotations_xyz,
    vertex_texture,
)

SIZE = 64


@pytest.fixture(scope="module")
def model():
    return load_hand_model("right")


@pytest.fixture(scope="module")
def seeds(model):
    """Two seed predictions: prior samples in the crop camera, with a small camera offset."""
    g = torch.Generator().manual_seed(3)
    prior = PosePrior.from_model(model)
    theta = torch.zeros(2, 63)
    theta[:, :45] = prior.sample(2, generator=g)
    theta[:, 45:55] = torch.randn(2, 10, generator=g) * 0.5
    theta[:, 55:59] = torch.randn(2, 4, generator=g) * 0.1
    images = torch.rand(2, 3, SIZE, SIZE, generator=g)
    return theta, images


def augment(model, seeds, seed=0, **cfg):
    theta, images = seeds
    config = AugmentConfig(crop_size=SIZE, **cfg)
    g = torch.Generator().manual_seed(seed)
    return augment_from_predictions(model, theta, images, generator=g, config=config)


def test_count_shapes_and_parameter_ranges(model, seeds):
    batch = augment(model, seeds, shape_sigma=3.0)
    n = 2 * 3  # three new instances per seed (the paper's count)
    assert len(batch) == n
    assert batch.image.shape == (n, 3, SIZE, SIZE) and batch.mask.shape == (n, SIZE, SIZE)
    assert batch.keypoints_2d.shape == (n, 21, 2) and batch.K.shape == (n, 3, 3)
    assert batch.seed_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.image.min() >= 0 and batch.image.max() <= 1
    assert batch.shape.abs().max() <= 3.0 and batch.shape.abs().max() > 1.5
    # articulation is the seed's (only shape and rotation change)
    assert_close(batch.pose, seeds[0][batch.seed_index, :45], atol=0)
    # new rotations differ per copy
    assert (batch.global_orient[0] - batch.global_orient[1]).abs().max() > 0.1
    assert batch.mask.sum(dim=(1, 2)).min() > 50  # each hand is visible


def test_labels_match_the_new_parameters(model, seeds):
    batch = augment(model, seeds)
    hand = model(
        pose=batch.pose, shape=batch.shape, global_orient=batch.global_orient, transl=batch.transl
    )
    assert_close(batch.keypoints_3d, hand.keypoints, atol=1e-6, what="keypoints_3d")
    assert_close(batch.keypoints_2d, project(hand.keypoints, batch.K), atol=1e-3, what="2d")
    sil = render_silhouette(hand.vertices, model.faces, batch.K, (SIZE, SIZE), sigma=0.02) > 0.5
    mask = batch.mask > 0.5
    iou = (sil & mask).sum((1, 2)).float() / (sil | mask).sum((1, 2)).float()
    assert iou.min() > 0.9, iou
    # framing: the keypoint box is centred, its longer side is SIZE / BOX_SCALE
    low, high = batch.keypoints_2d.amin(1), batch.keypoints_2d.amax(1)
    assert_close((low + high) / 2, torch.full((6, 2), (SIZE - 1) / 2), atol=1e-3)
    assert_close((high - low).amax(-1), torch.full((6,), SIZE / BOX_SCALE), atol=1e-3)


def test_texture_comes_from_the_seed_image(model, seeds):
    theta, _ = seeds
    color = torch.tensor([0.9, 0.2, 0.4])
    images = color[None, :, None, None].expand(2, 3, SIZE, SIZE).contiguous()
    config = AugmentConfig(crop_size=SIZE)
    g = torch.Generator().manual_seed(1)
    batch = augment_from_predictions(model, theta, images, generator=g, config=config)
    hand_pixels = batch.image.permute(0, 2, 3, 1)[batch.mask > 0.5]
    assert_close(hand_pixels, color.expand_as(hand_pixels), atol=1e-4, what="texture")
    background = batch.image.permute(0, 2, 3, 1)[batch.mask < 0.5]
    assert (background - color).abs().amax(-1).mean() > 0.1  # a random background


def test_deterministic_by_generator(model, seeds):
    a, b, c = augment(model, seeds, seed=5), augment(model, seeds, seed=5), augment(model, seeds, 6)
    assert torch.equal(a.image, b.image) and torch.equal(a.shape, b.shape)
    assert not torch.equal(a.image, c.image)


def test_rotations_cover_the_range():
    g = torch.Generator().manual_seed(0)
    rot = random_rotations_xyz(500, 180.0, g)
    assert_close(rot @ rot.mT, torch.eye(3).expand(500, 3, 3), atol=1e-5)
    # uniform per-axis angles in +-180 degrees: the optical axis ends up in every direction
    z_axis = rot[:, :, 2]
    assert z_axis[:, 2].min() < -0.9 and z_axis[:, 2].max() > 0.9
    small = random_rotations_xyz(100, 10.0, g)
    angle = torch.arccos(((small.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    assert angle.max() < torch.deg2rad(torch.tensor(10.0 * 3**0.5 + 1e-3))


def test_pool_ring_buffer_and_state(model, seeds):
    batch = augment(model, seeds)  # 6 instances
    pool = AugmentPool(capacity=4, crop_size=SIZE)
    pool.add(batch)
    assert len(pool) == 4 and pool.cursor == 2  # wrapped: the last two overwrote slots 0, 1
    assert_close(pool.data["keypoints_2d"][0], batch.keypoints_2d[4], atol=1e-5)
    restored = AugmentPool(capacity=4, crop_size=SIZE)
    restored.load_state_dict(pool.state_dict())
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a, b = pool.sample(3, g1), restored.sample(3, g2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (3, 3, SIZE, SIZE) and a["image"].max() <= 1.0
    with pytest.raises(ValueError, match="capacity"):
        AugmentPool(capacity=5, crop_size=SIZE).load_state_dict(pool.state_dict())


def test_texture_of_a_mesh_smaller_than_a_pixel_uses_raw_samples(model):
    hand = model()
    centre = hand.keypoints[:, 9:10]
    # the whole hand within a pixel, on the optical axis 0.6 m away
    tiny = (hand.vertices - centre) * 1e-4 + torch.tensor([0.0, 0.0, 0.6])
    K = torch.tensor([[300.0, 0.0, 31.5], [0.0, 300.0, 31.5], [0.0, 0.0, 1.0]])
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 1] = 0.7  # green everywhere
    colors = vertex_texture(image, tiny, model.faces, K)
    assert_close(colors[0], torch.tensor([0.0, 0.7, 0.0]).expand(colors.shape[1], 3), atol=1e-5)
