"""Aligned depth through the real pipeline (mediapipe, regressor, PnP, refinement, tracker) on
a rendered RGB-D clip with a realistic depth-camera noise model: metric placement, left hands,
bad depth, and a track keeping its learned size when the depth drops out."""

import numpy as np
import pytest
import torch

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.handmodel.size import HandSize
from hand_mesh_ros.pipeline import (
    CameraIntrinsics,
    EstimatorConfig,
    HandMeshEstimator,
    HandTracker,
)
from hand_mesh_ros.pipeline.types import DEPTH_IGNORED, DEPTH_USED
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, render_clip
from hand_mesh_ros.synthetic.depth_camera import DepthNoiseModel

FRAMES = 6


@pytest.fixture(scope="module")
def clip():
    model = load_hand_model("right")
    return render_clip(model, PosePrior.from_model(model), FRAMES, seed=0,
                       depth_noise=DepthNoiseModel())


@pytest.fixture(scope="module")
def estimator():
    torch.set_num_threads(2)
    est = HandMeshEstimator(EstimatorConfig(device="cpu"))
    yield est
    est.close()


def camera_error_mm(hand, frame) -> float:
    return 1000 * float(np.linalg.norm(hand.keypoints_3d - frame.keypoints_3d, axis=1).mean())


def test_depth_makes_the_hand_metric_in_the_camera_frame(clip, estimator):
    camera = CameraIntrinsics.from_matrix(clip.K)
    # frame 0's cold fit bends the fingers away from the camera (PA-MPJPE 28 mm with or
    # without depth: the gated depth points cannot undo it); frame 1 is a typical one
    frame = clip.frames[1]
    detections = estimator.detect(frame.image)
    assert len(detections.hands) == 1
    rgb = estimator.estimate(frame.image, camera, detections=detections)
    rgbd = estimator.estimate(frame.image, camera, depth=frame.depth, detections=detections)
    assert not rgb.depth_given and rgb.hands[0].depth is None
    hand = rgbd.hands[0]
    assert rgbd.depth_given and hand.depth_used and hand.depth.status == DEPTH_USED
    assert hand.depth.valid_fraction > 0.5 and hand.depth.residual_mm < 10
    rgb_error, rgbd_error = camera_error_mm(rgb.hands[0], frame), camera_error_mm(hand, frame)
    assert rgb_error > 30  # the size/distance tie of one RGB image (measured ~90 mm)
    assert rgbd_error < 20, (rgb_error, rgbd_error)


def test_a_left_hand_uses_its_mirrored_depth(clip, estimator):
    """The mirror image of the right hand is a left hand at the mirrored place: the depth
    mirrored with it must place it just as well."""
    frame = clip.frames[1]
    w = frame.image.shape[1]
    image = np.ascontiguousarray(frame.image[:, ::-1])
    depth = np.ascontiguousarray(frame.depth[:, ::-1])
    K = clip.K.clone()
    K[0, 2] = (w - 1) - K[0, 2]
    truth = frame.keypoints_3d * np.array([-1.0, 1.0, 1.0])
    result = estimator.estimate(image, CameraIntrinsics.from_matrix(K), depth=depth)
    assert len(result.hands) == 1
    hand = result.hands[0]
    assert hand.side == "left" and hand.depth_used
    error = 1000 * np.linalg.norm(hand.keypoints_3d - truth, axis=1).mean()
    assert error < 25, error


def test_bad_depth_is_refused_clearly(clip, estimator):
    frame = clip.frames[0]
    camera = CameraIntrinsics.from_matrix(clip.K)
    with pytest.raises(ValueError, match="aligned to the image"):
        estimator.estimate(frame.image, camera, depth=frame.depth[:-1])
    blank = estimator.estimate(frame.image, camera, depth=np.zeros_like(frame.depth))
    assert blank.hands and not blank.hands[0].depth_used  # all holes: RGB only, said so
    ignored = HandMeshEstimator(EstimatorConfig(device="cpu", depth_weight=0.0),
                                detector=estimator.detector)
    result = ignored.estimate(frame.image, camera, depth=frame.depth)
    assert result.hands[0].depth.status == DEPTH_IGNORED


def test_a_track_keeps_its_learned_size_when_the_depth_drops_out(clip, estimator):
    camera = CameraIntrinsics.from_matrix(clip.K)
    tracker = HandTracker(estimator)
    depth_frames = FRAMES // 2
    hands = []
    for i, frame in enumerate(clip.frames):
        depth = frame.depth if i < depth_frames else None
        result = tracker.update(frame.image, camera, stamp=i * FRAME_PERIOD_S, depth=depth)
        assert len(result.hands) == 1
        hands.append(result.hands[0])
    assert len({h.track_id for h in hands}) == 1
    assert all(h.depth_used for h in hands[:depth_frames])
    assert all(h.depth is None for h in hands[depth_frames:])
    track = tracker.tracks[0]
    assert track.depth_frames == depth_frames
    size = HandSize(load_hand_model("right"))
    measured = [  # each depth frame's shape, corrected by the size the depth still implied
        size.scaled(torch.tensor(h.shape)[None], torch.tensor([h.depth.scale]))[0].numpy()
        for h in hands[:depth_frames]
    ]
    for h, shape in zip(hands[:depth_frames], measured, strict=True):
        np.testing.assert_allclose(h.depth.measured_shape, shape, atol=1e-4)
    assert all(abs(h.depth.scale - 1) < 0.05 for h in hands[:depth_frames])
    np.testing.assert_allclose(track.learned_shape, np.mean(measured, axis=0), atol=1e-4)
    for hand in hands[depth_frames:]:  # RGB-only frames keep the learned shape
        np.testing.assert_allclose(hand.shape, track.learned_shape, atol=1e-5)


def test_a_track_that_began_without_depth_is_sized_by_its_first_depth_frame(estimator):
    """Depth that starts late (a camera's depth stream coming up after its colour): the track
    is cold-started once on its first depth frame, same id, so the depth sizes the hand
    (measured on this clip: 20-21 mm on the two RGB-only frames, then 14-16 mm with depth)."""
    model = load_hand_model("right")
    late = render_clip(model, PosePrior.from_model(model), 8, seed=3, focal=615.0,
                       depth_noise=DepthNoiseModel())
    camera = CameraIntrinsics.from_matrix(late.K)
    tracker = HandTracker(estimator)
    hands = []
    for i, frame in enumerate(late.frames):
        depth = frame.depth if i >= 2 else None
        result = tracker.update(frame.image, camera, stamp=i * FRAME_PERIOD_S, depth=depth)
        assert len(result.hands) == 1
        hands.append(result.hands[0])
    assert len({h.track_id for h in hands}) == 1
    assert all(h.depth_used for h in hands[2:])
    rgb_errors = [camera_error_mm(h, f) for h, f in zip(hands[:2], late.frames, strict=False)]
    depth_errors = [camera_error_mm(h, f) for h, f in zip(hands[2:], late.frames[2:],
                                                          strict=True)]
    assert np.median(depth_errors) < min(rgb_errors) - 3, (rgb_errors, depth_errors)
    assert np.median(depth_errors) < 18, depth_errors
    assert tracker.tracks[0].depth_frames == len(late.frames) - 2


def test_rgbd_frames_make_no_numpy_lapack_call(clip, estimator, monkeypatch):
    """After a LAPACK call numpy's OpenBLAS workers spin: one per frame (the side step's
    np.linalg.solve) kept a whole core busy and halved the node's rate on 2 cores
    (docs/ros.md). The per-frame path -- a new hand and a tracked one -- stays clear of it."""
    calls = []

    def refuse(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"np.linalg.{name} in the per-frame path")
        return call

    for name in ("solve", "inv", "pinv", "lstsq", "svd", "eig", "eigh", "det", "qr", "cholesky"):
        monkeypatch.setattr(np.linalg, name, refuse(name))
    camera = CameraIntrinsics.from_matrix(clip.K)
    tracker = HandTracker(estimator)
    for i, frame in enumerate(clip.frames[:3]):
        result = tracker.update(frame.image, camera, stamp=i * FRAME_PERIOD_S, depth=frame.depth)
        assert len(result.hands) == 1 and result.hands[0].depth_used
    assert calls == []
