"""The hand region: its intrinsics agree with its pixel map, and masks resample correctly."""

import torch
from helpers import assert_close

from hand_mesh_ros.camera import intrinsics_matrix, project
from hand_mesh_ros.fitting.roi import ROI_SCALE, HandRoi, hand_roi


def test_roi_box_is_the_papers_normalisation_box():
    kp = torch.tensor([[[100.0, 50.0], [160.0, 90.0], [130.0, 70.0]]])
    roi = hand_roi(kp, size=64)
    assert_close(roi.centre, [[130.0, 70.0]])
    assert_close(roi.side, [60.0 * ROI_SCALE])


def test_roi_intrinsics_match_pixel_mapping():
    K = intrinsics_matrix(500.0, 480.0, 320.0, 240.0, dtype=torch.float64)
    pts = torch.rand(2, 30, 3, dtype=torch.float64) * 0.2 + torch.tensor([-0.1, -0.1, 0.5])
    px = project(pts, K)
    roi = hand_roi(px, size=64)
    assert_close(project(pts, roi.intrinsics(K)), roi.to_roi_pixels(px), atol=1e-9)


def test_crop_mask_resamples_a_box():
    mask = torch.zeros(1, 100, 200, dtype=torch.float64)
    mask[0, 40:60, 80:120] = 1.0  # 40 x 20 box centred at (99.5, 49.5)
    kp = torch.tensor([[[79.5, 39.5], [119.5, 59.5]]], dtype=torch.float64)
    roi = hand_roi(kp, size=60)  # side = 40 * 1.5 = 60 image px -> 1 render px per image px
    crop = roi.crop_mask(mask)[0]
    assert crop.shape == (60, 60)
    # box occupies the middle 40 columns and 20 rows
    assert_close(crop.sum(), 800.0, atol=1e-6)
    assert crop[30, 10:50].min() == 1.0 and crop[30, :9].max() == 0.0


def test_crop_mask_agrees_with_rendering_through_roi_intrinsics():
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.render import rasterize

    model = load_hand_model("right", dtype=torch.float64)
    K = intrinsics_matrix(300.0, 300.0, 159.5, 119.5, dtype=torch.float64)
    verts = model(transl=torch.tensor([[0.01, 0.09, 0.45]], dtype=torch.float64)).vertices
    full = rasterize(verts, model.faces, K, image_size=(240, 320)).mask.double()
    roi = hand_roi(
        project(model(transl=torch.tensor([[0.01, 0.09, 0.45]], dtype=torch.float64)).keypoints, K),
        64,
    )
    # reference: the region rendered directly at 4x and box-filtered to area coverage
    fine = HandRoi(centre=roi.centre, side=roi.side, size=256)
    direct = rasterize(verts, model.faces, fine.intrinsics(K), image_size=(256, 256)).mask
    direct = torch.nn.functional.avg_pool2d(direct.double()[:, None], 4)[:, 0]
    resampled = roi.crop_mask(full)
    ys, xs = torch.meshgrid(
        torch.arange(64.0, dtype=torch.float64),
        torch.arange(64.0, dtype=torch.float64),
        indexing="ij",
    )

    def centroid(m):
        return torch.stack(((m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()))

    assert_close(centroid(resampled[0]), centroid(direct[0]), atol=0.05, what="centroid (px)")
    assert abs(resampled.sum().item() - direct.sum().item()) < 0.02 * direct.sum().item()
