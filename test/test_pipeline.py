"""The image -> hands pipeline on real images (mediapipe, regressor, PnP, refinement)."""

import json

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.imageio import read_image
from hand_mesh_ros.metrics import pa_mpjpe
from hand_mesh_ros.pipeline import (
    CameraIntrinsics,
    EstimatorConfig,
    HandMeshEstimator,
    HandTracker,
    TrackerConfig,
)

HANDS = SHARED_DATA / "hands"
pytestmark = pytest.mark.skipif(not HANDS.is_dir(), reason=f"{HANDS} (shared data) is absent")


def annotations(dataset: str) -> list[dict]:
    rows = [json.loads(line) for line in (HANDS / "annotations.jsonl").read_text().splitlines()]
    return [r for r in rows if r["dataset"] == dataset]


def camera_of(row) -> CameraIntrinsics:
    return CameraIntrinsics.from_matrix(row["K"])


@pytest.fixture(scope="module")
def estimator():
    torch.set_num_threads(1)
    est = HandMeshEstimator(EstimatorConfig(device="cpu", refine_iterations=20))
    yield est
    est.close()


@pytest.fixture(scope="module")
def rhd_results(estimator):
    rows = annotations("RHD")
    return [
        (row, estimator.estimate(read_image(HANDS / row["image"]), camera_of(row))) for row in rows
    ]


def test_rhd_sides_2d_and_metric_3d(rhd_results):
    assert len(rhd_results) == 3
    for row, result in rhd_results:
        assert len(result.hands) == 1 and not result.camera.assumed
        hand = result.hands[0]
        assert hand.side == row["side"]  # mediapipe's mirrored convention corrected
        kp = np.array(row["kp2d"])[:, :2]
        assert np.linalg.norm(hand.keypoints_2d - kp, axis=1).mean() < 10.0
        truth = torch.tensor(row["kp3d"], dtype=torch.float64)[None] / 1000.0
        pa_mm = 1000 * pa_mpjpe(torch.tensor(hand.keypoints_3d)[None], truth).item()
        assert pa_mm < 30.0
        depth_ratio = hand.keypoints_3d[9, 2] / truth[0, 9, 2].item()
        assert 0.6 < depth_ratio < 1.5  # metric size from the shape prior (docs/pipeline.md)


def test_outputs_are_consistent_with_the_side_models(rhd_results):
    """The returned MANO-style params reproduce the returned mesh with that side's model,
    and keypoints_2d are the projection of keypoints_3d."""
    models = {side: load_hand_model(side, dtype=torch.float64) for side in ("left", "right")}
    for _, result in rhd_results:
        for hand in result.hands:
            model = models[hand.side]
            out = model(
                **{
                    k: torch.tensor(getattr(hand, k))[None]
                    for k in ("pose", "shape", "global_orient", "transl")
                }
            )
            assert np.abs(out.vertices[0].numpy() - hand.vertices).max() < 1e-4
            assert np.abs(out.keypoints[0].numpy() - hand.keypoints_3d).max() < 1e-4
            k3 = hand.keypoints_3d
            cam = result.camera
            uv = k3[:, :2] / k3[:, 2:3] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
            assert np.abs(uv - hand.keypoints_2d).max() < 1e-6
    sides = {h.side for _, r in rhd_results for h in r.hands}
    assert sides == {"left", "right"}


def test_assumed_intrinsics_and_no_hand(estimator):
    row = annotations("FreiHAND")[0]
    image = read_image(HANDS / row["image"])
    result = estimator.estimate(image)
    assert result.camera.assumed and result.camera.fx > 0
    assert len(result.hands) == 1 and result.hands[0].side == "right"
    blank = np.full((240, 320, 3), 127, np.uint8)
    empty = estimator.estimate(blank)
    assert empty.hands == () and empty.width == 320 and "total" in empty.timings_ms


def test_mirrored_input_flips_the_side():
    row = annotations("RHD")[0]
    image = np.ascontiguousarray(read_image(HANDS / row["image"])[:, ::-1])
    est = HandMeshEstimator(EstimatorConfig(device="cpu", mirrored_input=True, refine_iterations=5))
    try:
        result = est.estimate(image)
    finally:
        est.close()
    assert [h.side for h in result.hands] == [row["side"]]


def test_tracker_keeps_identity_and_warm_starts(estimator):
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    # palm detection on every frame: the same image then gives the same 2D keypoints, so
    # only the warm start moves the hand (followed landmarks wander a few px on a still
    # image: the next test)
    tracker = HandTracker(estimator, TrackerConfig(palm_search_frames=1))
    frames = [tracker.update(image, camera) for _ in range(4)]
    ids = [[h.track_id for h in f.hands] for f in frames]
    assert ids == [[0], [0], [0], [0]]
    assert frames[1].hands[0].refine_iterations <= estimator.config.warm_iterations
    assert "regress" in frames[0].timings_ms and "regress" not in frames[1].timings_ms
    # on a still image the warm-started hand settles (the cold fit stopped at its iteration
    # cap; each warm frame moves less), with the track's shape kept
    keypoints = [f.hands[0].keypoints_3d for f in frames]
    steps = [np.abs(b - a).max() for a, b in zip(keypoints, keypoints[1:], strict=False)]
    assert steps[2] < steps[0] and steps[2] < 0.01
    assert np.array_equal(frames[3].hands[0].shape, frames[0].hands[0].shape)
    blank = np.full_like(image, 127)
    for _ in range(tracker.config.max_missed_frames + 1):
        assert tracker.update(blank, camera).hands == ()
    assert tracker.tracks == []
    assert [h.track_id for h in tracker.update(image, camera).hands] == [1]


def test_tracked_hands_are_followed_without_palm_detection_and_searched_every_n_frames(
    estimator,
):
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    asked, detect = [], estimator.detect

    def recording(image, tracked=0):
        asked.append(tracked)
        return detect(image, tracked)

    estimator.detect = recording
    try:
        tracker = HandTracker(estimator, TrackerConfig(palm_search_frames=4))
        frames = [tracker.update(image, camera) for _ in range(9)]
        blank = np.full_like(image, 127)
        lost = [tracker.update(blank, camera) for _ in range(tracker.config.max_missed_frames + 2)]
    finally:
        del estimator.detect
    # a search while no hand is tracked and every 4th frame; else the one tracked hand is
    # followed; while the track survives undetected it is still followed (mediapipe searches
    # by itself when a followed hand is gone), then searches again
    assert asked[:9] == [0, 1, 1, 1, 0, 1, 1, 1, 0]
    assert asked[9:] == [1, 1, 1, 0, 0] and all(f.hands == () for f in lost)
    assert [[h.track_id for h in f.hands] for f in frames] == [[0]] * 9
    # followed landmarks are the detector's as well: close to the searched ones
    searched, followed = frames[0].hands[0], frames[1].hands[0]
    gap = np.linalg.norm(followed.keypoints_2d - searched.keypoints_2d, axis=1).mean()
    truth = np.array(row["kp2d"])[:, :2]
    errors = [np.linalg.norm(f.hands[0].keypoints_2d - truth, axis=1).mean() for f in frames]
    assert gap < 6.0 and max(errors) < 2 * min(errors) + 3.0, (gap, errors)


def test_dhpe_evidence_weights_replace_the_detector_keypoints(tmp_path):
    """With evidence weights the pipeline fits the network's heatmap keypoints (here an
    untrained ResNet-18 + CPM: only the path is checked, not accuracy)."""
    from hand_mesh_ros.detect.dhpe_evidence import (
        EvidenceConfig,
        EvidenceNet,
        save_evidence_weights,
    )

    torch.manual_seed(0)
    path = tmp_path / "evidence.pt"
    save_evidence_weights(EvidenceNet(EvidenceConfig(backbone="resnet18")), path)
    row = annotations("RHD")[2]
    image = read_image(HANDS / row["image"])
    est = HandMeshEstimator(
        EstimatorConfig(device="cpu", refine_iterations=3, evidence_weights=str(path))
    )
    try:
        plain = est.detector.detect(image)
        result = est.estimate(image, camera_of(row))
    finally:
        est.close()
    assert len(result.hands) == 1
    detected = result.hands[0].detected_keypoints_2d
    assert np.abs(detected - plain[0].keypoints).max() > 1.0  # not mediapipe's keypoints
    box = np.ptp(plain[0].keypoints, axis=0).max() * 1.5
    assert np.abs(detected - plain[0].keypoints.mean(0)).max() < box  # inside the crop


def test_missing_evidence_weights_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        HandMeshEstimator(
            EstimatorConfig(device="cpu", evidence_weights=str(tmp_path / "nowhere.pt"))
        )


def test_tracks_own_their_side_by_vote_and_match_across_flickering_labels():
    from hand_mesh_ros.detect import Detection2D
    from hand_mesh_ros.pipeline.tracker import Track, match_tracks

    kp = np.stack([np.linspace(100, 180, 21), np.linspace(200, 120, 21)], axis=1)

    def det(side, shift, score=0.9):
        return Detection2D(
            keypoints=kp + shift,
            confidence=np.full(21, score),
            side=side,
            score=score,
            world_keypoints=None,
            bbox=(100.0, 120.0, 80.0, 80.0),
        )

    track = Track(0, "right", kp)
    track.vote("right", 0.9)
    # a nearby detection labelled "left" (mediapipe flicker) still matches the right track
    assert match_tracks([track], [det("left", 3.0)]) == {0: 0}
    # far away: no match
    assert match_tracks([track], [det("right", 400.0)]) == {}
    assert track.vote("left", 0.5) is False and track.side == "right"
    # 1.0 vs 0.9: a bare majority is not enough (hysteresis: each switch is a cold start)
    assert track.vote("left", 0.5) is False and track.side == "right"
    assert track.vote("left", 0.5) is True and track.side == "left"  # 1.5 > 1.5 x 0.9


def _tracked_ids(tracker, image, camera, stamps, sizes=None):
    """Track ids per frame for frames at ``stamps`` (s), optionally resized to ``sizes``."""
    ids = []
    for k, stamp in enumerate(stamps):
        frame, cam = image, camera
        if sizes is not None and sizes[k] is not None:
            frame = np.ascontiguousarray(np.pad(image, ((0, sizes[k]), (0, 0), (0, 0))))
        ids.append([h.track_id for h in tracker.update(frame, cam, stamp=stamp).hands])
    return ids


@pytest.mark.parametrize(
    "stamps, expected",
    [
        ((0.0, 0.033, 0.066), [[0], [0], [0]]),  # a continuous 30 Hz stream: one track
        ((0.0, 0.033, 2.0), [[0], [0], [1]]),  # a gap over track_timeout_s (1 s) ends it
        ((5.0, 5.033, 1.0), [[0], [0], [1]]),  # a stamp going backwards (a bag restarts)
    ],
    ids=["continuous", "gap", "backwards"],
)
def test_the_tracker_owns_the_stream_continuity_rules(estimator, stamps, expected):
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    tracker = HandTracker(estimator, TrackerConfig(track_timeout_s=1.0))
    assert _tracked_ids(tracker, image, camera, stamps) == expected


def test_a_new_image_size_ends_the_tracks_and_warm_starts_are_refits(estimator):
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    tracker = HandTracker(estimator)
    ids = _tracked_ids(tracker, image, camera, (0.0, 0.1, 0.2), sizes=(None, None, 16))
    assert ids == [[0], [0], [1]]
    # a warm start is the previous estimate, refined with the warm iteration budget
    first = estimator.estimate(image, camera)
    warm = estimator.estimate(image, camera, warm=[first.hands[0]])
    assert warm.hands[0].refine_iterations <= estimator.config.warm_iterations
    assert np.array_equal(warm.hands[0].shape, first.hands[0].shape)  # shape kept when warm
    assert "regress" not in warm.timings_ms and "regress" in first.timings_ms
    with pytest.raises(ValueError, match="warm starts for"):
        estimator.estimate(image, camera, warm=[None, None])


def test_a_rejected_result_ends_every_track(estimator):
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    tracker = HandTracker(estimator)
    assert _tracked_ids(tracker, image, camera, (0.0, 0.1)) == [[0], [0]]
    tracker.reject_last()
    assert _tracked_ids(tracker, image, camera, (0.2,)) == [[1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
def test_the_cuda_path_gives_the_cpu_path_hands():
    """device cuda runs detection's output through the same tensor code on the GPU: tracked
    estimates of a real image agree with the CPU's to well under a millimetre."""
    row = annotations("RHD")[2]
    image, camera = read_image(HANDS / row["image"]), camera_of(row)
    hands = {}
    for device in ("cpu", "cuda"):
        estimator = HandMeshEstimator(EstimatorConfig(device=device))
        assert estimator.device.type == device
        tracker = HandTracker(estimator, TrackerConfig(palm_search_frames=1))
        frames = [tracker.update(image, camera, stamp=i / 30) for i in range(3)]
        hands[device] = [f.hands[0] for f in frames]
        estimator.close()
    for cpu, cuda in zip(hands["cpu"], hands["cuda"], strict=True):
        assert np.abs(cpu.keypoints_3d - cuda.keypoints_3d).max() < 5e-4
        assert np.abs(cpu.vertices - cuda.vertices).max() < 1e-3
