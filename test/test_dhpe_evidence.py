"""The DHPE 2D evidence front end: crop geometry, weights files, end-to-end keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.detect.dhpe_evidence import (
    EVIDENCE_FORMAT,
    DHPEEvidence,
    EvidenceConfig,
    EvidenceNet,
    crop_hand,
    crop_to_image,
    evidence_net_from_dhpe,
    load_evidence_net,
    save_evidence_weights,
)
from hand_mesh_ros.detect.types import Detection2D
from hand_mesh_ros.fitting.roi import HandRoi, hand_roi
from hand_mesh_ros.nets.cpm import CPMConfig
from hand_mesh_ros.nets.heatmaps import heatmap_argmax

SMALL_CPM = CPMConfig(num_stages=2, channels=16, kernel_size=3, convs_per_stage=1,
                      stage1_channels=32)
SMALL = EvidenceConfig(backbone="resnet18", cpm=SMALL_CPM)
CROP = SMALL.crop_size
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]  # torchvision's statistics
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def box_keypoints(lo, hi) -> torch.Tensor:
    """(1, 21, 2) float64 keypoints spread over the box [lo, hi] (both corners included)."""
    t = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    points = lo + torch.stack((t, t.flip(0)), dim=-1) * (hi - lo)
    points[0], points[1] = lo, hi
    return points[None]


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 blurred noise (gentle gradients, so interpolation schemes agree)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 4.0)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min()) * 255.0
    return np.round(blurred).astype(np.uint8)


def make_detection(keypoints: np.ndarray, side: str, score: float) -> Detection2D:
    lo, hi = keypoints.min(0), keypoints.max(0)
    return Detection2D(
        keypoints=keypoints,
        confidence=np.full(21, 0.9),
        side=side,
        score=score,
        world_keypoints=np.arange(63, dtype=np.float64).reshape(21, 3) * 1e-3,
        bbox=(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])),
    )


@pytest.fixture(scope="module")
def small_net() -> EvidenceNet:
    torch.manual_seed(1)
    return EvidenceNet(SMALL).eval()


# -- crop geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("lo", "hi"),
    [((50.0, 40.0), (90.0, 70.0)), ((-60.0, -30.0), (150.0, 170.0))],
    ids=["upsampled", "downsampled-partly-outside"],
)
def test_crop_puts_a_blob_where_to_roi_pixels_says(lo, hi):
    point = np.array([70.3, 55.7])
    v, u = np.mgrid[0:120, 0:160]
    blob = np.exp(-((u - point[0]) ** 2 + (v - point[1]) ** 2) / (2 * 3.0**2))
    image = np.repeat(np.round(blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    roi = hand_roi(box_keypoints(lo, hi), CROP)
    crop = crop_hand(image, roi, 0)[..., 0].astype(np.float64)
    cv_, cu = np.mgrid[0:CROP, 0:CROP]
    centroid = np.array([(crop * cu).sum(), (crop * cv_).sum()]) / crop.sum()
    expected = roi.to_roi_pixels(torch.tensor(point)[None, None])[0, 0].numpy()
    assert_close(centroid, expected, atol=0.25, what="blob centre in crop px")
    back = crop_to_image(torch.tensor(expected)[None, None], roi)[0, 0]
    assert_close(back, point, atol=1e-9, what="crop -> image inverts to_roi_pixels")


def test_crop_matches_grid_sample_resampling_with_zero_padding():
    # HandRoi.crop_mask (torch grid_sample, align_corners=False) is an independent resampler
    # with the same pixel map; with scale > 1 it does no supersampling (plain bilinear).
    image = smooth_image(100, 130, seed=3)
    roi = hand_roi(box_keypoints((-20.0, 30.0), (40.0, 80.0)), CROP)  # left part outside
    assert float(roi.scale[0]) > 1.0
    crop = crop_hand(image, roi, 0).astype(np.float64)
    channels = torch.tensor(image, dtype=torch.float64).permute(2, 0, 1)
    per_channel = HandRoi(roi.centre.expand(3, 2), roi.side.expand(3), roi.size)
    expected = per_channel.crop_mask(channels).permute(1, 2, 0)  # a "mask" per color
    # cv2 rounds sample positions to 1/32 px (INTER_BITS = 5) and outputs uint8: ~3 levels at
    # the steep image-to-padding edge, < 0.2 on average. A 0.1 px shift gives 21 / 0.64.
    assert_close(crop, expected, atol=3.5, what="cv2 crop vs grid_sample crop (0-255)")
    assert np.abs(crop - expected.numpy()).mean() < 0.3
    left_columns = int(np.floor(float(roi.to_roi_pixels(torch.tensor([[[-0.5, 0.0]]]))[0, 0, 0])))
    assert left_columns > 10 and (crop[:, :left_columns] == 0).all(), "zero padding"


# -- weights files ---------------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_heatmaps(tmp_path, small_net):
    path = tmp_path / "evidence.pt"
    save_evidence_weights(small_net, path)
    loaded = load_evidence_net(path)
    assert loaded.config == SMALL and not loaded.training
    image = torch.rand(2, 3, CROP, CROP)  # RGB in [0, 1]
    with torch.inference_mode():
        expected, actual = small_net(image).stages, loaded(image).stages
    assert len(actual) == SMALL_CPM.num_stages
    assert actual[-1].shape == (2, 21, 32, 32)
    for a, e in zip(actual, expected, strict=True):
        assert torch.equal(a, e)


def test_bad_weights_files_raise_clear_errors(tmp_path, small_net):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_evidence_net(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="not a readable torch"):
        load_evidence_net(junk)
    good = {"format": EVIDENCE_FORMAT, "config": SMALL.to_dict(),
            "state_dict": small_net.state_dict()}
    cases = {
        "format": {**good, "format": "hand_mesh_ros.keypoint_regressor/1"},
        "expected format": {"config": SMALL.to_dict(), "state_dict": {}},
        "expected a dict with keys": {**good, "extra": 1},
        "invalid config": {**good, "config": {**SMALL.to_dict(), "backbone": "vgg16"}},
        "do not match": {**good, "config": {**SMALL.to_dict(), "backbone": "resnet50"}},
    }
    for message, content in cases.items():
        path = tmp_path / "bad.pt"
        torch.save(content, path)
        with pytest.raises(ValueError, match=message):
            load_evidence_net(path)


def test_weights_from_a_dhpe_load_and_give_its_heatmaps():
    from hand_mesh_ros.handmodel.model import load_hand_model
    from hand_mesh_ros.nets.dhpe import DHPE, DHPEConfig

    config = DHPEConfig(backbone="resnet18", cpm=SMALL_CPM, silhouette_size=None)
    dhpe = DHPE(config, load_hand_model("right"), torch.zeros(45)).eval()
    net = evidence_net_from_dhpe(dhpe)
    image = torch.rand(1, 3, CROP, CROP)  # RGB in [0, 1]
    with torch.inference_mode():
        expected = dhpe(image)
        actual = net(image).final
    assert_close(actual, expected.heatmaps[-1], atol=1e-5, what="evidence vs DHPE heat maps")
    assert_close(net.keypoints(image)[0], expected.keypoints_2d, atol=1e-3, what="keypoints_2d")


# -- end to end ------------------------------------------------------------------------------

def test_refine_detections_returns_the_nets_argmax_in_image_pixels(tmp_path, small_net):
    path = tmp_path / "evidence.pt"
    save_evidence_weights(small_net, path)
    image = smooth_image(180, 240, seed=5)
    right = box_keypoints((120.0, 60.0), (200.0, 150.0))[0].numpy()
    left = box_keypoints((-15.0, 100.0), (50.0, 190.0))[0].numpy()  # partly outside
    detections = [make_detection(right, "right", 0.8), make_detection(left, "left", 0.6)]
    out = DHPEEvidence(path).refine_detections(image, detections)

    # Independent reference: crop with a matrix built from u = left + (c + 0.5) / scale.
    crops = []
    for det in detections:
        lo, hi = det.keypoints.min(0), det.keypoints.max(0)
        side = 1.5 * (hi - lo).max()
        corner, s = (lo + hi) / 2 - side / 2, CROP / side
        matrix = np.array([[s, 0, -corner[0] * s - 0.5], [0, s, -corner[1] * s - 0.5]])
        crops.append(cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)))
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    normalised = (batch - IMAGENET_MEAN) / IMAGENET_STD  # what the net does inside
    with torch.inference_mode():
        kp_crop, peaks = small_net.keypoints(batch)
        maps = small_net.cpm(small_net.backbone(normalised)).final
    assert_close(heatmap_argmax(maps, crop_size=CROP)[0], kp_crop, atol=0.0, what="normalised")

    assert len(out) == 2
    for i, (det, new) in enumerate(zip(detections, out, strict=True)):
        lo, hi = det.keypoints.min(0), det.keypoints.max(0)
        side = 1.5 * (hi - lo).max()
        corner, s = (lo + hi) / 2 - side / 2, CROP / side
        expected = corner + (kp_crop[i].double().numpy() + 0.5) / s
        assert_close(new.keypoints, expected, atol=1e-6, what=f"hand {i} keypoints")
        assert_close(new.confidence, peaks[i].clamp(0, 1), atol=1e-6, what="confidence")
        assert np.isfinite(new.keypoints).all()
        assert ((new.keypoints >= corner - 1e-9) & (new.keypoints <= corner + side)).all()
        assert ((new.confidence >= 0) & (new.confidence <= 1)).all()
        assert not np.allclose(new.keypoints, det.keypoints, atol=1.0), "net output used"
        assert (new.side, new.score) == (det.side, det.score)
        assert new.world_keypoints is det.world_keypoints
        x, y, w, h = new.bbox
        assert x >= -0.5 and y >= -0.5 and x + w <= 239.5 + 1e-9 and y + h <= 179.5 + 1e-9


def test_non_finite_net_output_keeps_the_detectors_keypoints(tmp_path, small_net):
    broken = EvidenceNet(SMALL).eval()
    broken.load_state_dict(small_net.state_dict())
    with torch.no_grad():
        broken.cpm.refiners[-1][-1].bias[3] = float("nan")  # keypoint 3's final map
    path = tmp_path / "broken.pt"
    save_evidence_weights(broken, path)
    det = make_detection(box_keypoints((40.0, 40.0), (100.0, 110.0))[0].numpy(), "right", 0.7)
    image = smooth_image(150, 150, seed=6)
    (new,) = DHPEEvidence(path).refine_detections(image, [det])
    assert_close(new.keypoints[3], det.keypoints[3], atol=0.0, what="fallback keypoint")
    assert new.confidence[3] == det.confidence[3]
    assert np.isfinite(new.keypoints).all()
    assert not np.allclose(new.keypoints[4], det.keypoints[4], atol=1e-3)


def test_no_detections_and_bad_images(tmp_path, small_net):
    path = tmp_path / "evidence.pt"
    save_evidence_weights(small_net, path)
    evidence = DHPEEvidence(path)
    assert evidence.refine_detections(np.zeros((10, 10, 3), np.uint8), []) == []
    with pytest.raises(ValueError, match="uint8"):
        evidence.refine_detections(np.zeros((10, 10, 3), np.float32), [])
