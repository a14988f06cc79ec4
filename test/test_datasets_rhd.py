"""RHD reader: original-format files written here (pickle, color PNG, label mask PNG), and a
conventions check on the real RHD samples in shared/data/hands."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
from helpers import SHARED_DATA, assert_close

from hand_mesh_ros.datasets import RHDConfig, RHDDataset, open_dataset
from hand_mesh_ros.datasets.files import project_points, read_rgb
from hand_mesh_ros.datasets.rhd import load_rhd_annotations, rhd_hand
from hand_mesh_ros.topology import KEYPOINT_PARENTS

SIZE = 320
REAL_HANDS = SHARED_DATA / "hands"


def core_to_rhd(core: np.ndarray) -> np.ndarray:
    """Core order -> RHD's per-hand order, written from the dataset README's description
    (0 wrist; per finger tip, DIP, PIP, MCP) independently of the reader's table."""
    native = np.empty_like(core)
    native[0] = core[0]
    for finger in range(5):
        for j in range(4):  # native j = 0 tip ... 3 MCP; core 1 + 4f + 3 is the tip
            native[1 + 4 * finger + j] = core[1 + 4 * finger + (3 - j)]
    return native


def random_hand(rng: np.random.Generator, centre_x: float) -> np.ndarray:
    """(21, 3) core-order points in metres, in front of the camera."""
    return np.c_[rng.uniform(-0.05, 0.05, (21, 2)) + [centre_x, 0.0], rng.uniform(0.4, 0.6, 21)]


def write_rhd(root, rng, visible_counts):
    """An RHD split 'training' with one image per entry of ``visible_counts`` = (left, right)
    numbers of visible keypoints. Returns {id: (K, left core xyz, right core xyz, vis l, r)}."""
    split = root / "training"
    (split / "color").mkdir(parents=True)
    (split / "mask").mkdir()
    annotations, truth = {}, {}
    for sample_id, (n_left, n_right) in enumerate(visible_counts):
        f = rng.uniform(250, 320)
        K = np.array([[f, 0, 160.0], [0, f, 160.0], [0, 0, 1]])
        left, right = random_hand(rng, -0.08), random_hand(rng, 0.08)
        vis = []
        for n in (n_left, n_right):
            v = np.zeros(21)
            v[rng.permutation(21)[:n]] = 1
            vis.append(v)
        xyz = np.r_[core_to_rhd(left), core_to_rhd(right)]
        uv = project_points(xyz, K)
        uv_vis = np.c_[uv, np.r_[core_to_rhd(vis[0][:, None]), core_to_rhd(vis[1][:, None])]]
        annotations[sample_id] = {
            "xyz": xyz.astype(np.float32),
            "uv_vis": uv_vis.astype(np.float32),
            "K": K.astype(np.float32),
        }
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        cv2.imwrite(str(split / "color" / f"{sample_id:05d}.png"), image[..., ::-1])
        labels = np.zeros((SIZE, SIZE), np.uint8)
        labels[:, :100] = 1  # person
        labels[10:40, 10:30] = 5  # left index
        labels[50:60, 10:30] = 17  # left palm
        labels[10:20, 200:230] = 18  # right thumb
        labels[100:130, 200:230] = 33  # right palm
        cv2.imwrite(str(split / "mask" / f"{sample_id:05d}.png"), labels)
        truth[sample_id] = (K, left, right, vis[0], vis[1], image)
    with (split / "anno_training.pickle").open("wb") as f:
        pickle.dump(annotations, f)
    return truth


@pytest.fixture(scope="module")
def rhd(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd")
    truth = write_rhd(root, np.random.default_rng(3), [(21, 15), (4, 21), (12, 9)])
    return root, truth


def test_hands_filtered_by_visible_keypoints(rhd):
    root, _ = rhd
    dataset = RHDDataset(root, "training", config=RHDConfig(min_visible_keypoints=10))
    sources = [dataset[i].source for i in range(len(dataset))]
    assert sources == [
        "rhd/training/00000:left",
        "rhd/training/00000:right",
        "rhd/training/00001:right",
        "rhd/training/00002:left",
    ]
    assert len(RHDDataset(root, config=RHDConfig(min_visible_keypoints=0))) == 6
    only_left = RHDDataset(root, config=RHDConfig(min_visible_keypoints=0, sides=("left",)))
    assert [s.side for s in only_left] == ["left"] * 3


def test_order_units_K_visibility_and_projection(rhd):
    root, truth = rhd
    for sample in RHDDataset(root, config=RHDConfig(min_visible_keypoints=0)):
        sample_id = int(sample.source.split("/")[-1].split(":")[0])
        K, left, right, vis_left, vis_right, image = truth[sample_id]
        expected = left if sample.side == "left" else right
        assert_close(sample.keypoints_3d, expected, atol=1e-6, what="keypoints_3d (metres)")
        assert_close(sample.K, K, atol=1e-4, what="K")
        visibility = vis_left if sample.side == "left" else vis_right
        np.testing.assert_array_equal(sample.visibility, visibility)
        projected = project_points(sample.keypoints_3d, sample.K)
        assert_close(projected, sample.keypoints_2d, atol=1e-3, what="K @ xyz vs uv")
        np.testing.assert_array_equal(sample.image, image)


def test_per_hand_masks(rhd):
    root, _ = rhd
    dataset = RHDDataset(root, config=RHDConfig(min_visible_keypoints=0))
    left, right = dataset[0], dataset[1]
    assert (left.side, right.side) == ("left", "right")
    assert left.mask.sum() == 30 * 20 + 10 * 20  # labels 5 and 17; the person is not a hand
    assert right.mask.sum() == 10 * 30 + 30 * 30
    assert not (left.mask & right.mask).any()
    assert left.mask[15, 15] and not left.mask[15, 50] and right.mask[110, 210]


def test_bad_inputs_are_named(rhd, tmp_path):
    root, _ = rhd
    with pytest.raises(ValueError, match="split"):
        RHDDataset(root, "test")
    with pytest.raises(FileNotFoundError, match="anno_evaluation.pickle"):
        RHDDataset(root, "evaluation")
    with pytest.raises(ValueError, match="min_visible_keypoints"):
        RHDConfig(min_visible_keypoints=22)
    evil = tmp_path / "training"
    evil.mkdir()
    (evil / "anno_training.pickle").write_bytes(pickle.dumps({0: {"xyz": print}}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        RHDDataset(tmp_path)
    with pytest.raises(ValueError, match="'uv_vis'"):
        rhd_hand({"xyz": np.zeros((42, 3)), "K": np.eye(3)}, "left")
    assert len(open_dataset("rhd", root)) == 4


# --- conventions check on the real RHD samples (mmpose test data, see shared/data/hands) ---


def _real_rhd_entries():
    path = REAL_HANDS / "annotations.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not available")
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if e["dataset"] == "RHD"]


def test_real_rhd_samples_read_back_with_metric_plausible_bones(tmp_path):
    """Real RHD annotations (core order, mm) rewritten in RHD's native pickle layout (metres,
    42 points, the hand in its side's half) and read back: the 3D projects onto the 2D with
    K, bones have human sizes, and proximal phalanges are longer than distal ones (a
    reversed finger order would swap them)."""
    entries = _real_rhd_entries()
    annotations = {}
    for number, entry in enumerate(entries):
        xyz_core = np.asarray(entry["kp3d"]) / 1000.0
        kp2d = np.asarray(entry["kp2d"])
        other_xyz = np.full((21, 3), [0.0, 0.0, 1.0])  # the other hand: unannotated
        uv_vis = np.c_[core_to_rhd(kp2d[:, :2]), core_to_rhd(kp2d[:, 2:])]
        xyz_halves = [core_to_rhd(xyz_core), other_xyz]
        uv_halves = [uv_vis, np.zeros((21, 3))]
        if entry["side"] == "right":
            xyz_halves.reverse()
            uv_halves.reverse()
        annotations[number] = {
            "xyz": np.concatenate(xyz_halves),
            "uv_vis": np.concatenate(uv_halves),
            "K": entry["K"],
        }
    path = tmp_path / "anno_training.pickle"
    path.write_bytes(pickle.dumps(annotations))
    loaded = load_rhd_annotations(path)
    for number, entry in enumerate(entries):
        kp3d, kp2d, visibility, K = rhd_hand(loaded[number], entry["side"])
        assert visibility.sum() == 21
        assert_close(project_points(kp3d, K), kp2d, atol=0.5, what=f"{entry['name']} projection")
        assert 0.3 < kp3d[:, 2].min() and kp3d[:, 2].max() < 1.5  # metres in front of the camera
        bones = np.linalg.norm(kp3d[1:] - kp3d[list(KEYPOINT_PARENTS[1:])], axis=1)
        assert bones.min() > 0.008 and bones.max() < 0.12, f"{entry['name']}: {bones}"
        palm = np.linalg.norm(kp3d[9] - kp3d[0])  # wrist -> middle MCP
        assert 0.06 < palm < 0.12
        for mcp in (5, 9, 13, 17):  # index..little: MCP->PIP longer than DIP->tip
            proximal = np.linalg.norm(kp3d[mcp + 1] - kp3d[mcp])
            distal = np.linalg.norm(kp3d[mcp + 3] - kp3d[mcp + 2])
            assert proximal > distal, f"{entry['name']}: finger at {mcp} looks reversed"
        image = read_rgb(REAL_HANDS / entry["image"])
        assert image.shape == (SIZE, SIZE, 3)
