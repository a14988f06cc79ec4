"""The README's first command: the whole pipeline on the embedded synthetic clip."""

import json

from hand_mesh_ros import demo


def test_demo_runs_the_pipeline_and_scores_against_the_truth(tmp_path):
    summary = demo.run(tmp_path, frames=3, seed=0)
    assert summary["frames_with_a_hand"] == "3/3"
    errors = summary["mean_errors_vs_truth"]
    assert errors["kp2d_px"] < 20.0 and errors["pa_mpjpe_mm"] < 25.0
    assert errors["wrist_depth_error_mm"] < 200.0
    assert [r["track_id"] for r in summary["frames"]] == [0, 0, 0]
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["frames_with_a_hand"] == "3/3"
    assert (tmp_path / "contact_sheet.png").stat().st_size > 10_000
    frame = json.loads((tmp_path / "frame_001.json").read_text())
    assert len(frame["hands"]) == 1 and len(frame["hands"][0]["keypoints_3d"]) == 21
