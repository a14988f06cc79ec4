"""MediaPipe hand front end on the real annotated images of shared/data/hands.

One detector per configuration for the whole module (building one and its first call cost
~0.1 s); every image is detected once and the results are shared by the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import REPO_ROOT, SHARED_DATA

from hand_mesh_ros.detect import Detection2D, MediapipeConfig, MediapipeHandDetector
from hand_mesh_ros.imageio import read_image
from hand_mesh_ros.topology import KEYPOINT_NAMES, KEYPOINT_PARENTS, NUM_KEYPOINTS

HANDS = SHARED_DATA / "hands"
# The README's measurement used 0.3; at the default 0.5 two FreiHAND hands are missed.
TEST_DETECTION_CONFIDENCE = 0.3
MIN_DETECTED = 16  # of the 18 annotated hands
MAX_MEAN_ERROR_PX = {"RHD": 8.0, "FreiHAND": 15.0}
MAX_RELATIVE_ERROR_WEB = 0.25  # OneHand10K: mean error / longest side of the hand box

pytest.importorskip("mediapipe", reason="mediapipe is not installed (see requirements.txt)")
if not (HANDS / "annotations.jsonl").is_file():
    pytest.skip(f"shared hand images not found at {HANDS}", allow_module_level=True)


@dataclass(frozen=True)
class Case:
    """One annotated hand, its image and the detector's output on it."""

    ann: dict
    image: np.ndarray
    detections: list[Detection2D]
    seconds: float

    @property
    def gt(self) -> np.ndarray:
        return np.asarray(self.ann["kp2d"], dtype=np.float64)

    def matched(self) -> Detection2D | None:
        """The detection closest to the annotation (images hold one annotated hand)."""
        return _closest(self.detections, self.gt)


def _mean_error(det: Detection2D, gt: np.ndarray) -> float:
    visible = gt[:, 2] > 0
    return float(np.linalg.norm(det.keypoints[visible] - gt[visible, :2], axis=1).mean())


def _closest(detections: list[Detection2D], gt: np.ndarray) -> Detection2D | None:
    return min(detections, key=lambda d: _mean_error(d, gt), default=None)


def _flip_gt(gt: np.ndarray, width: int) -> np.ndarray:
    flipped = gt.copy()
    flipped[:, 0] = width - 1 - gt[:, 0]  # pixel centres at integers
    return flipped


@pytest.fixture(scope="module")
def detector():
    config = MediapipeConfig(min_detection_confidence=TEST_DETECTION_CONFIDENCE)
    with MediapipeHandDetector(config) as det:
        yield det


@pytest.fixture(scope="module")
def cases(detector) -> list[Case]:
    anns = [json.loads(line) for line in (HANDS / "annotations.jsonl").read_text().splitlines()]
    out = []
    for ann in anns:
        image = read_image(HANDS / ann["image"])
        start = time.perf_counter()
        detections = detector.detect(image)
        out.append(Case(ann, image, detections, time.perf_counter() - start))
    return out


def test_mediapipe_landmark_order_is_the_core_keypoint_order():
    from mediapipe.python.solutions.hands import HandLandmark

    renames = {"index_finger": "index", "middle_finger": "middle", "ring_finger": "ring",
               "pinky": "little"}
    names = []
    for landmark in sorted(HandLandmark, key=int):
        name = landmark.name.lower()
        for old, new in renames.items():
            name = name.replace(old, new)
        names.append(name)
    assert tuple(names) == KEYPOINT_NAMES


def test_detection_rate(cases):
    found = [c.ann["name"] for c in cases if c.detections]
    assert len(found) >= MIN_DETECTED, f"found {len(found)}/{len(cases)}: {found}"


@pytest.mark.parametrize("dataset", sorted(MAX_MEAN_ERROR_PX))
def test_mean_2d_error(cases, dataset):
    errors = [_mean_error(c.matched(), c.gt) for c in cases
              if c.ann["dataset"] == dataset and c.detections]
    assert len(errors) >= 3, f"too few {dataset} hands detected: {len(errors)}"
    mean = float(np.mean(errors))
    print(f"\n{dataset}: mean 2D error {mean:.2f} px over {len(errors)} hands")
    assert mean < MAX_MEAN_ERROR_PX[dataset], f"{dataset} errors {np.round(errors, 1)}"


def test_error_relative_to_hand_size_on_non_square_web_images(cases):
    """OneHand10K: real web photos, none square (so x/y scaling mix-ups show); the error is
    judged relative to the annotated box's longest side (measured: 0.02-0.16)."""
    web = [c for c in cases if c.ann["dataset"] == "OneHand10K" and c.detections]
    assert len(web) >= 5 and all(c.image.shape[0] != c.image.shape[1] for c in web)
    relative = {c.ann["name"]: _mean_error(c.matched(), c.gt) / max(c.ann["bbox"][2:])
                for c in web}
    print(f"\nOneHand10K error / hand size: {np.round(list(relative.values()), 3)}")
    assert max(relative.values()) < MAX_RELATIVE_ERROR_WEB, relative


def test_side_is_the_physical_side_on_unmirrored_images(cases):
    known = [c for c in cases if c.ann["side"] is not None and c.detections]
    assert len(known) >= 10, f"only {len(known)} detected hands with a known side"
    wrong = [(c.ann["name"], c.ann["side"], c.matched().side) for c in known
             if c.matched().side != c.ann["side"]]
    assert not wrong, f"wrong side (name, truth, detected): {wrong}"


def test_mirrored_input_gives_the_same_physical_side(cases):
    config = MediapipeConfig(
        mirrored_input=True, min_detection_confidence=TEST_DETECTION_CONFIDENCE
    )
    checked, wrong, flip_errors = 0, [], []
    with MediapipeHandDetector(config) as mirrored:
        for case in cases:
            if case.ann["side"] is None or not case.detections:
                continue
            width = case.image.shape[1]
            flipped_gt = _flip_gt(case.gt, width)
            det = _closest(mirrored.detect(case.image[:, ::-1]), flipped_gt)
            if det is None:
                continue
            checked += 1
            if det.side != case.ann["side"]:
                wrong.append((case.ann["name"], case.ann["side"], det.side))
            # Same hand, mirrored: its keypoints are the mirror of the unflipped detection's.
            expected = _flip_gt(np.c_[case.matched().keypoints, np.ones(21)], width)[:, :2]
            flip_errors.append(np.linalg.norm(det.keypoints - expected, axis=1).mean())
    assert checked >= 10, f"only {checked} mirrored hands detected"
    assert not wrong, f"wrong side on mirrored images (name, truth, detected): {wrong}"
    assert np.median(flip_errors) < 3.0, f"flip consistency px: {np.round(flip_errors, 1)}"


def test_detection_fields(cases):
    for case in cases:
        height, width = case.image.shape[:2]
        for det in case.detections:
            assert det.keypoints.shape == (NUM_KEYPOINTS, 2) and det.keypoints.dtype == np.float64
            assert det.side in ("left", "right") and 0.5 <= det.score <= 1.0
            # The legacy API gives no per-landmark values: every keypoint gets the score.
            np.testing.assert_array_equal(det.confidence, np.full(NUM_KEYPOINTS, det.score))
            x, y, w, h = det.bbox
            assert -0.5 <= x and x + w <= width - 0.5 + 1e-9
            assert -0.5 <= y and y + h <= height - 0.5 + 1e-9
            inside = (det.keypoints >= -0.5).all(1) & (det.keypoints <= [width - 0.5,
                                                                          height - 0.5]).all(1)
            kp = det.keypoints[inside]
            assert (kp[:, 0] >= x - 1e-9).all() and (kp[:, 0] <= x + w + 1e-9).all()
            assert (kp[:, 1] >= y - 1e-9).all() and (kp[:, 1] <= y + h + 1e-9).all()
        scores = [d.score for d in case.detections]
        assert scores == sorted(scores, reverse=True)


def _chain_length(points: np.ndarray, tip: int) -> float:
    """Sum of bone lengths from a fingertip back to the wrist."""
    total, k = 0.0, tip
    while KEYPOINT_PARENTS[k] >= 0:
        total += float(np.linalg.norm(points[k] - points[KEYPOINT_PARENTS[k]]))
        k = KEYPOINT_PARENTS[k]
    return total


def test_keypoint_order_anatomy_on_real_hands(cases):
    """Metric 3D keypoints of every detected hand: the thumb's CMC is the base nearest the
    wrist and the middle finger's chain is longer than the little finger's; over all hands
    the middle chain is the longest (median) and the thumb's the shortest. (MediaPipe's 3D is
    rough on single hands -- e.g. a side view squeezes the palm -- so finer per-hand
    anatomy is not asserted.)"""
    hands = [c.matched() for c in cases if c.detections]
    tips = (4, 8, 12, 16, 20)
    medians = []
    for det in hands:
        world = det.world_keypoints
        chains = np.array([_chain_length(world, tip) for tip in tips])
        medians.append(chains)
        bases = np.linalg.norm(world[[1, 5, 9, 13, 17]] - world[0], axis=1)
        assert bases.argmin() == 0, f"thumb CMC is not the base nearest the wrist: {bases}"
        assert chains[2] > chains[4], f"little chain longer than middle: {chains}"
        assert 0.08 < chains[2] < 0.25, f"middle chain {chains[2]:.3f} m is not hand-sized"
    medians = np.median(medians, axis=0)
    assert medians.argmax() == 2 and medians.argmin() == 0, f"median chains {medians}"


def _rotation_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Best rotation R (det +1) and scale s with s R source ~ target (both centred);
    returns R and the mean residual in the target's units."""
    a, b = source - source.mean(0), target - target.mean(0)
    u, sing, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float((sing * np.diag(d)).sum() / (a**2).sum())
    return rot, float(np.linalg.norm(scale * a @ rot.T - b, axis=1).mean())


def test_world_keypoints_axes_follow_the_camera_frame(cases):
    rhd = [c for c in cases if c.ann["dataset"] == "RHD" and c.detections]
    assert len(rhd) == 3
    for case in rhd:
        world = case.matched().world_keypoints
        truth = np.asarray(case.ann["kp3d"]) / 1000.0  # mm -> m, OpenCV camera frame
        rot, residual = _rotation_fit(world, truth)
        angle = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
        assert angle < 35.0, f"{case.ann['name']}: world axes rotated {angle:.1f} deg"
        _, mirrored_residual = _rotation_fit(world, truth * [-1.0, 1.0, 1.0])
        assert residual < mirrored_residual, "a mirrored frame fits the world keypoints better"
        assert abs(world.mean(0)).max() < 0.05, "origin is not near the hand's centre"


def test_blank_image_has_no_hands(detector):
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_detect_rejects_bad_images(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(np.zeros((64, 64), np.uint8))


def test_close_is_idempotent_and_final():
    det = MediapipeHandDetector(MediapipeConfig(max_hands=1))
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="after close"):
        det.detect(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_hands", 0), ("max_hands", 1.5), ("min_detection_confidence", 1.2),
     ("min_tracking_confidence", -0.1), ("model_complexity", 2), ("mirrored_input", "yes"),
     ("static_image_mode", 1)],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        MediapipeConfig(**{field: value})


def test_missing_mediapipe_gives_a_clear_import_error():
    code = (
        "import sys\n"
        "sys.modules['mediapipe'] = None\n"
        "from hand_mesh_ros.detect import MediapipeHandDetector\n"
        "try:\n"
        "    MediapipeHandDetector()\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "pip install mediapipe==0.10.21" in out.stdout


def test_report_time_per_image(cases):
    """Measured, not asserted: mediapipe's time per image on this CPU (first call excluded)."""
    times = np.array([c.seconds for c in cases[1:]]) * 1000.0
    sizes = {f"{c.image.shape[1]}x{c.image.shape[0]}" for c in cases}
    print(f"\nmediapipe time per image: median {np.median(times):.1f} ms, "
          f"max {times.max():.1f} ms over {len(times)} images ({sorted(sizes)})")
    assert times.size == len(cases) - 1
