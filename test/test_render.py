"""Renderer: hard rasterizer vs OpenCV and analytic depth, soft silhouette vs the hard mask,
a dense reference and finite differences, batching, memory (pair counts), CUDA parity, and
the pytorch3d backend against the torch backends (values and gradients).

Run as a script (``python test/test_render.py``) to print the forward+backward timings
quoted in docs/renderer.md.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import assert_close

import hand_mesh_ros
from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix, project
from hand_mesh_ros.render import (
    DEFAULT_SIGMA,
    NEAR_PLANE,
    pair_stats,
    rasterize,
    render_silhouette,
)
from hand_mesh_ros.render.backends import pytorch3d_available
from hand_mesh_ros.render.geometry import front_facing
from hand_mesh_ros.render.pytorch3d_backend import silhouette_pytorch3d

F64 = torch.float64
SUPERSAMPLE = 8  # OpenCV reference drawn at 8x, then sampled at our pixel centres
CV_SHIFT = 8  # fractional bits of the OpenCV polygon coordinates


# ---------------------------------------------------------------- meshes built in code


def torus(major=0.06, minor=0.025, n_major=30, n_minor=25, dtype=F64):
    """Closed torus about the z axis, 2 * n_major * n_minor faces (1500 by default)."""
    u = torch.arange(n_major, dtype=dtype) * (2 * math.pi / n_major)
    v = torch.arange(n_minor, dtype=dtype) * (2 * math.pi / n_minor)
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    ring = major + minor * torch.cos(vv)
    verts = torch.stack((ring * torch.cos(uu), ring * torch.sin(uu), minor * torch.sin(vv)), -1)
    i, j = torch.arange(n_major)[:, None], torch.arange(n_minor)[None, :]
    a, b = i * n_minor + j, (i + 1) % n_major * n_minor + j
    c, d = (i + 1) % n_major * n_minor + (j + 1) % n_minor, i * n_minor + (j + 1) % n_minor
    faces = torch.cat((torch.stack((a, b, c), -1), torch.stack((a, c, d), -1))).reshape(-1, 3)
    return verts.reshape(-1, 3), faces


def icosphere(subdivisions=2, radius=1.0, dtype=F64):
    """Unit icosahedron subdivided ``subdivisions`` times (20 * 4^n faces), scaled."""
    t = (1 + 5**0.5) / 2
    verts = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    faces = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in verts]

    def mid(i, j, cache):
        if (j, i) not in cache:
            p = verts[i] + verts[j]
            verts.append(p / np.linalg.norm(p))
            cache[(i, j)] = len(verts) - 1
        return cache.get((j, i), cache.get((i, j)))

    for _ in range(subdivisions):
        cache, new_faces = {}, []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b, cache), mid(b, c, cache), mid(c, a, cache)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return torch.tensor(np.array(verts) * radius, dtype=dtype), torch.tensor(faces)


def grid(n=12, size=0.2, dtype=F64):
    """Planar n x n grid in the z = 0 plane, centred at the origin, 2 * n^2 faces."""
    s = torch.linspace(-size / 2, size / 2, n + 1, dtype=dtype)
    yy, xx = torch.meshgrid(s, s, indexing="ij")
    verts = torch.stack((xx, yy, torch.zeros_like(xx)), -1).reshape(-1, 3)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    a, d = i * (n + 1) + j, (i + 1) * (n + 1) + j
    b, c = a + 1, d + 1
    faces = torch.cat((torch.stack((a, b, c), -1), torch.stack((a, c, d), -1))).reshape(-1, 3)
    return verts, faces


def disc(radius=0.05, segments=48, dtype=F64):
    """Flat fan-triangulated disc in the z = 0 plane."""
    angle = torch.arange(segments, dtype=dtype) * (2 * math.pi / segments)
    rim = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle), 0 * angle), -1)
    verts = torch.cat((torch.zeros(1, 3, dtype=dtype), rim))
    k = torch.arange(segments)
    return verts, torch.stack((torch.zeros_like(k), 1 + k, 1 + (k + 1) % segments), -1)


def rot_x(angle, dtype=F64):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=dtype)


def posed_torus(dtype=F64, offset=(0.01, 0.0, 0.5)):
    verts, faces = torus(dtype=dtype)
    verts = verts @ rot_x(0.6, dtype).T + torch.tensor(offset, dtype=dtype)
    return verts[None], faces


def k224(dtype=F64):
    return intrinsics_matrix(400.0, 410.0, 111.5, 108.0, dtype=dtype)


# ---------------------------------------------------------------- independent references


def opencv_mask(uv: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    """Union of projected triangles drawn by cv2.fillConvexPoly, sampled at pixel centres.

    OpenCV fills every pixel whose centre is within about half a pixel of the polygon; at
    SUPERSAMPLE x that halo is 1/16 px, so sampling every SUPERSAMPLE-th pixel gives coverage
    at our pixel centres up to that tolerance.
    """
    big = np.zeros((SUPERSAMPLE * (height - 1) + 1, SUPERSAMPLE * (width - 1) + 1), np.uint8)
    fixed = np.round(uv * SUPERSAMPLE * (1 << CV_SHIFT)).astype(np.int32)
    for tri in faces:
        cv2.fillConvexPoly(big, fixed[tri], 1, lineType=cv2.LINE_8, shift=CV_SHIFT)
    return big[::SUPERSAMPLE, ::SUPERSAMPLE] > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def dense_soft_silhouette(vertices, faces, K, height, width, sigma):
    """Slow reference: every pixel against every face, plain autograd, no culling."""
    uv = project(vertices, K)[0]
    tri = uv[faces]  # (F, 3, 2)
    v, u = torch.meshgrid(
        torch.arange(height, dtype=uv.dtype), torch.arange(width, dtype=uv.dtype), indexing="ij"
    )
    p = torch.stack((u, v), -1).reshape(-1, 1, 2)  # (P, 1, 2)
    dist2 = []
    for k in range(3):
        a, b = tri[None, :, k], tri[None, :, (k + 1) % 3]
        ab = b - a
        s = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
        dist2.append(((p - a - s[..., None] * ab) ** 2).sum(-1))
    dist2 = torch.stack(dist2).amin(0)  # (P, F)
    a, b, c = tri[None, :, 0], tri[None, :, 1], tri[None, :, 2]
    area = (b - a)[..., 0] * (c - a)[..., 1] - (b - a)[..., 1] * (c - a)[..., 0]
    w_b = ((p - a)[..., 0] * (c - a)[..., 1] - (p - a)[..., 1] * (c - a)[..., 0]) / area
    w_c = ((b - a)[..., 0] * (p - a)[..., 1] - (b - a)[..., 1] * (p - a)[..., 0]) / area
    inside = (w_b >= 0) & (w_c >= 0) & (w_b + w_c <= 1)
    coverage = torch.sigmoid(torch.where(inside, dist2, -dist2) / sigma)
    return (1 - torch.prod(1 - coverage, dim=1)).reshape(1, height, width)


# ---------------------------------------------------------------- hard rasterizer


def test_hard_mask_matches_opencv_on_torus():
    verts, faces = posed_torus()
    K = k224()
    result = rasterize(verts, faces, K, (224, 224))
    ref = opencv_mask(project(verts, K)[0].numpy(), faces.numpy(), 224, 224)
    mask = result.mask[0].numpy()
    assert result.mask.dtype == torch.bool and 5000 < mask.sum() < 30000
    assert iou(mask, ref) >= 0.99
    # the hole of the torus is empty in both
    assert not mask[108, 112] and not ref[108, 112]


def test_hard_mask_matches_opencv_across_image_border():
    verts, faces = posed_torus(offset=(0.045, -0.03, 0.4))  # sticks out right and top
    K = k224()
    mask = rasterize(verts, faces, K, (224, 224)).mask[0].numpy()
    ref = opencv_mask(project(verts, K)[0].numpy(), faces.numpy(), 224, 224)
    assert mask[:, -1].any() and mask[0].any()
    assert iou(mask, ref) >= 0.99


def _hand_mesh():
    try:
        model = hand_mesh_ros.load_hand_model("right", dtype=F64)
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"hand model not available yet: {err}")
    verts = model().vertices.detach().to(F64)
    return verts + torch.tensor([0.0, 0.08, 0.5], dtype=F64), model.faces


def test_hard_mask_matches_opencv_on_hand_model():
    verts, faces = _hand_mesh()
    K = intrinsics_matrix(400.0, 400.0, 111.5, 111.5, dtype=F64)
    mask = rasterize(verts, faces, K, (224, 224)).mask[0].numpy()
    ref = opencv_mask(project(verts, K)[0].numpy(), faces.numpy(), 224, 224)
    assert mask.sum() > 2000
    assert iou(mask, ref) >= 0.99


def test_depth_of_tilted_plane_is_analytic_and_colors_interpolate_in_3d():
    verts, faces = grid(n=10, size=0.3)
    verts = verts @ rot_x(0.5).T
    verts = verts + torch.tensor([0.0, 0.0, 0.6], dtype=F64)
    verts[:, 2] += 0.4 * verts[:, 0]  # also tilted about y: z = z0 + a x + b y
    K = k224()
    colors = torch.cat((verts[:, :1], torch.full_like(verts[:, :1], 0.25)), dim=-1)
    out = rasterize(verts[None], faces, K, (224, 224), vertex_colors=colors)
    # plane through three of its vertices: n . X = n . X0
    x0, x1, x2 = verts[0], verts[10], verts[-1]
    normal = torch.linalg.cross(x1 - x0, x2 - x0)
    v, u = torch.meshgrid(torch.arange(224, dtype=F64), torch.arange(224, dtype=F64), indexing="ij")
    ray = torch.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)), -1)
    depth = (normal @ x0) / (ray @ normal)
    mask = out.mask[0]
    assert mask.float().mean() > 0.3
    assert_close(out.depth[0][mask], depth[mask], atol=1e-9, what="plane depth")
    assert (out.depth[0][~mask] == 0).all() and (out.face_index[0][~mask] == -1).all()
    # color = the vertex x coordinate: perspective-correct interpolation gives the 3D x
    assert_close(out.color[0, ..., 0][mask], (depth * ray[..., 0])[mask], atol=1e-9, what="x")
    assert_close(out.color[0, ..., 1][mask], torch.full_like(depth[mask], 0.25), atol=1e-12)
    assert (out.color[0][~mask] == 0).all()


def test_depth_of_sphere_is_analytic_up_to_tessellation():
    radius, centre = 0.1, torch.tensor([0.02, -0.01, 0.5], dtype=F64)
    verts, faces = icosphere(3, radius)
    K = k224()
    out = rasterize((verts + centre)[None], faces, K, (224, 224))
    v, u = torch.meshgrid(torch.arange(224, dtype=F64), torch.arange(224, dtype=F64), indexing="ij")
    ray = torch.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)), -1)
    a, b = (ray * ray).sum(-1), -2 * ray @ centre
    disc_ = b * b - 4 * a * (centre @ centre - radius**2)
    t = (-b - disc_.clamp_min(0).sqrt()) / (2 * a)
    normal = (t[..., None] * ray - centre) / radius
    facing = -(normal * ray).sum(-1) / ray.norm(dim=-1)
    check = out.mask[0] & (disc_ > 0) & (facing > 0.5)
    assert check.sum() > 5000
    error = out.depth[0][check] - t[check]
    # chords lie inside the sphere: the mesh is never nearer; sagitta ~3e-4 m at subdivision 3
    assert error.min() > -1e-9 and error.max() < 1e-3


def test_bary_and_face_index_reproduce_the_visible_point():
    verts, faces = posed_torus()
    K = k224()
    out = rasterize(verts, faces, K, (224, 224))
    mask = out.mask[0]
    bary, face = out.bary[0][mask], out.face_index[0][mask]
    assert (face >= 0).all() and (face < faces.shape[0]).all()
    assert_close(bary.sum(-1), torch.ones(len(bary), dtype=F64), atol=1e-12, what="bary sum")
    assert bary.min() > -1e-9
    point = (bary[..., None] * verts[0][faces[face]]).sum(1)  # (N, 3)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    assert_close(project(point[None], K)[0], torch.stack((cols, rows), -1).to(F64), atol=1e-6)
    assert_close(point[:, 2], out.depth[0][mask], atol=1e-12, what="depth")
    # z-buffer: the visible face is the nearest of the faces covering the pixel (torus front)
    assert out.depth[0][mask].max() < 0.5 + 0.025 * 1.5


def test_constant_color_stays_constant_and_color_is_differentiable():
    verts, faces = posed_torus()
    colors = torch.tensor([[0.2, 0.5, 0.9]], dtype=F64).expand(verts.shape[1], 3).clone()
    colors.requires_grad_(True)
    out = rasterize(verts, faces, k224(), (224, 224), vertex_colors=colors)
    mask = out.mask[0]
    assert_close(out.color[0][mask], colors.detach()[0].expand(int(mask.sum()), 3), atol=1e-12)
    out.color.sum().backward()
    # each covered pixel's weights sum to 1, so the gradient sums to the covered count
    assert_close(colors.grad.sum(0), torch.full((3,), float(mask.sum()), dtype=F64), atol=1e-6)


# ---------------------------------------------------------------- soft silhouette


def test_soft_silhouette_matches_dense_reference_values_and_gradients():
    verts, faces = icosphere(1, 0.08)
    verts = (verts @ rot_x(0.3).T + torch.tensor([0.01, 0.0, 0.5], dtype=F64))[None]
    verts.requires_grad_(True)
    K = intrinsics_matrix(50.0, 50.0, 15.5, 15.5, dtype=F64)
    weights = torch.rand(1, 32, 32, dtype=F64)
    fast = render_silhouette(verts, faces, K, (32, 32), sigma=1.5)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), verts)
    slow = dense_soft_silhouette(verts, faces, K, 32, 32, sigma=1.5)
    (grad_slow,) = torch.autograd.grad((slow * weights).sum(), verts)
    # culled pairs each contribute D < 2.1e-9
    assert_close(fast, slow, atol=1e-7, what="silhouette")
    assert_close(grad_fast, grad_slow, atol=1e-5 * grad_slow.abs().max().item(), what="grad")
    assert 0 <= fast.min() and fast.max() <= 1 and fast.max() > 0.99


def test_soft_silhouette_gradient_matches_finite_differences():
    verts, faces = icosphere(1, 0.08)
    verts = (verts @ rot_x(0.7).T + torch.tensor([-0.01, 0.02, 0.5], dtype=F64))[None]
    K = intrinsics_matrix(50.0, 48.0, 15.5, 16.0, dtype=F64)
    weights = torch.rand(1, 32, 32, dtype=F64)

    def loss(v):
        return (render_silhouette(v, faces, K, (32, 32), sigma=1.0) * weights).sum()

    x = verts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x), x)
    step = 1e-6  # metres, ~1e-4 px
    flat = verts.reshape(-1)
    for index in torch.randperm(flat.numel())[:12].tolist():
        plus, minus = flat.clone(), flat.clone()
        plus[index] += step
        minus[index] -= step
        numeric = (loss(plus.view_as(verts)) - loss(minus.view_as(verts))) / (2 * step)
        analytic = grad.reshape(-1)[index]
        assert abs(analytic - numeric) <= 1e-5 * grad.abs().max() + 1e-4 * abs(numeric), (
            index,
            analytic.item(),
            numeric.item(),
        )


def test_keypoint_projection_gradient_matches_finite_differences():
    points = (torch.rand(2, 21, 3, dtype=F64) - 0.5) * 0.2 + torch.tensor([0, 0, 0.5], dtype=F64)
    K = k224()
    weights = torch.rand(2, 21, 2, dtype=F64)
    x = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((project(x, K) * weights).sum(), x)
    step = 1e-7
    for index in torch.randperm(points.numel())[:20].tolist():
        plus, minus = points.clone().reshape(-1), points.clone().reshape(-1)
        plus[index] += step
        minus[index] -= step
        diff = (project(plus.view_as(points), K) - project(minus.view_as(points), K)) * weights
        numeric = diff.sum() / (2 * step)
        assert abs(grad.reshape(-1)[index] - numeric) <= 1e-6 * abs(numeric) + 1e-5


def test_soft_silhouette_approaches_hard_mask_as_sigma_shrinks():
    verts, faces = posed_torus()
    K = intrinsics_matrix(130.0, 130.0, 31.5, 31.5, dtype=F64)
    hard = rasterize(verts, faces, K, (64, 64)).mask[0].to(F64)
    sigmas = (4.0, 1.0, 0.25, 1 / 16, 1 / 64, 1 / 256, 1 / 1024)
    gaps = [
        (render_silhouette(verts, faces, K, (64, 64), sigma=s)[0] - hard).abs().mean().item()
        for s in sigmas
    ]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    # pixels near interior edges dip (SoftRas); that band narrows like sqrt(sigma)
    assert gaps[-1] < 0.004, gaps


def test_translation_moves_centroid_by_fx_dx_over_z_and_depth_shrinks():
    # a closed, nearly flat lens (depth extent 2 mm) so that u = fx * x / z + cx holds
    verts, faces = icosphere(3, 0.05)
    verts = verts * torch.tensor([1.0, 1.0, 0.02], dtype=F64)
    K = intrinsics_matrix(300.0, 300.0, 63.5, 63.5, dtype=F64)
    grid_u = torch.arange(128, dtype=F64)

    def centroid_and_area(image):
        area = image.sum()
        return (image.sum(0) * grid_u).sum() / area, area

    z, dx, dz = 0.5, 0.02, 0.25
    base = verts + torch.tensor([0.0, 0.0, z], dtype=F64)
    moved = base + torch.tensor([dx, 0.0, 0.0], dtype=F64)
    farther = base + torch.tensor([0.0, 0.0, dz], dtype=F64)
    placed = (base, moved, farther)
    hard = [rasterize(v[None], faces, K, (128, 128)).mask[0].to(F64) for v in placed]
    soft = [render_silhouette(v[None], faces, K, (128, 128))[0] for v in placed]
    for images in (hard, soft):
        (u0, area0), (u1, _), (_, area2) = (centroid_and_area(image) for image in images)
        assert abs((u1 - u0) - 300.0 * dx / z) < 0.01, (u1 - u0).item()
        ratio = area2 / area0
        # the hard area scales like 1 / z^2; the soft one also has an edge blur ~ perimeter ~ 1 / z
        assert (z / (z + dz)) ** 2 - 0.01 < ratio < z / (z + dz)
    assert (
        abs(centroid_and_area(hard[2])[1] / centroid_and_area(hard[0])[1] - (z / (z + dz)) ** 2)
        < 0.01
    )


def test_backface_culling_keeps_the_silhouette_of_a_closed_mesh():
    """Front faces of a closed, outward-oriented mesh cover its silhouette: culling back
    faces changes the soft mask only along the contour and leaves the hard coverage."""
    for side in ("right", "left"):
        model = load_hand_model(side, dtype=torch.float64)
        pose = torch.zeros(2, 45, dtype=torch.float64)
        pose[1, 3::3] = 0.6  # curl the fingers: self-occlusion
        orient = torch.tensor([[0.0, 0.0, 0.0], [0.4, 1.2, 0.3]], dtype=torch.float64)
        transl = torch.tensor([[0.0, 0.08, 0.45]], dtype=torch.float64).expand(2, 3)
        verts = model(pose=pose, global_orient=orient, transl=transl).vertices
        K = intrinsics_matrix(250.0, 250.0, 63.5, 63.5, dtype=torch.float64)
        front = front_facing(verts, model.faces)
        assert 0.3 < front.double().mean() < 0.7  # about half the faces face the camera
        depth = verts[:, model.faces].mean(2)[..., 2]  # (2, F) face centroid depth
        nearest, farthest = depth.argmin(-1), depth.argmax(-1)
        assert front[torch.arange(2), nearest].all() and not front[torch.arange(2), farthest].any()
        hard = rasterize(verts, model.faces, K, (128, 128)).mask
        both = render_silhouette(verts, model.faces, K, (128, 128), sigma=0.05)
        culled = render_silhouette(
            verts, model.faces, K, (128, 128), sigma=0.05, cull_backfaces=True
        )
        for soft in (both, culled):
            inter = ((soft > 0.5) & hard).sum()
            union = ((soft > 0.5) | hard).sum()
            assert inter / union > 0.97


# ---------------------------------------------------------------- batching, memory, robustness


def test_batch_equals_single_calls_and_k_may_be_batched():
    verts, faces = posed_torus()
    batch = torch.cat(
        (
            verts,
            verts + torch.tensor([0.02, -0.01, 0.1], dtype=F64),
            verts @ rot_x(0.4).T + torch.tensor([0.0, 0.0, 0.3], dtype=F64),
        )
    )
    K = k224()
    Kb = torch.stack((K, K * torch.tensor([[1.1], [0.9], [1.0]], dtype=F64), K))
    sil = render_silhouette(batch, faces, Kb, (96, 112), sigma=0.7)
    hard = rasterize(batch, faces, Kb, (96, 112), vertex_colors=batch)
    assert sil.shape == (3, 96, 112) and hard.depth.shape == (3, 96, 112)
    for b in range(3):
        one = render_silhouette(batch[b : b + 1], faces, Kb[b], (96, 112), sigma=0.7)
        assert_close(sil[b : b + 1], one, atol=1e-12, what=f"silhouette {b}")
        single = rasterize(batch[b : b + 1], faces, Kb[b], (96, 112), vertex_colors=batch[b])
        assert torch.equal(hard.face_index[b : b + 1], single.face_index)
        assert_close(hard.depth[b : b + 1], single.depth, atol=0)
        assert_close(hard.color[b : b + 1], single.color, atol=0)
    shared = render_silhouette(batch, faces, K, (96, 112), sigma=0.7)
    assert_close(shared[[0, 2]], sil[[0, 2]], atol=0)


def test_pairs_are_far_fewer_than_pixels_times_faces_and_chunking_is_exact():
    verts, faces = icosphere(3, 0.09)  # 1280 faces
    verts = (verts + torch.tensor([0.0, 0.0, 0.5], dtype=F64))[None]
    K = k224()
    stats = pair_stats(verts, faces, K, (224, 224), sigma=1.0, max_pairs=50_000)
    hard_stats = pair_stats(verts, faces, K, (224, 224))
    assert stats.dense_pairs == 224 * 224 * 1280
    assert stats.total_pairs < stats.dense_pairs / 100  # box culling keeps ~0.5 %
    covered = int(rasterize(verts, faces, K, (224, 224)).mask.sum())
    assert covered <= hard_stats.total_pairs < stats.total_pairs
    assert stats.num_chunks == math.ceil(stats.total_pairs / 50_000)
    # tiny chunks (faces split across chunks) give the same values and gradients
    x = verts.clone().requires_grad_(True)
    weights = torch.rand(1, 224, 224, dtype=F64)
    results = []
    for max_pairs in (1 << 19, 7919):
        sil = render_silhouette(x, faces, K, (224, 224), sigma=1.0, max_pairs=max_pairs)
        (grad,) = torch.autograd.grad((sil * weights).sum(), x)
        hard = rasterize(x.detach(), faces, K, (224, 224), max_pairs=max_pairs)
        results.append((sil.detach(), grad, hard.face_index))
    assert_close(results[0][0], results[1][0], atol=1e-12)
    assert_close(results[0][1], results[1][1], atol=1e-9)
    assert torch.equal(results[0][2], results[1][2])


def test_faces_behind_or_at_the_camera_are_culled_without_nan():
    verts, faces = grid(n=8, size=0.4)
    verts = verts @ rot_x(1.2).T + torch.tensor([0.0, 0.0, 0.12], dtype=F64)
    verts = verts[None].clone()
    near = (verts[0, faces, 2] <= NEAR_PLANE).any(-1)
    assert near.any() and (~near).any() and (verts[0, :, 2] < 0).any()
    K = intrinsics_matrix(100.0, 100.0, 31.5, 31.5, dtype=F64)
    x = verts.clone().requires_grad_(True)
    sil = render_silhouette(x, faces, K, (64, 64))
    sil.sum().backward()
    assert torch.isfinite(sil).all() and torch.isfinite(x.grad).all()
    kept = render_silhouette(verts, faces[~near], K, (64, 64))
    assert_close(sil, kept, atol=0)
    hard, hard_kept = (rasterize(verts, f, K, (64, 64)) for f in (faces, faces[~near]))
    assert torch.equal(hard.mask, hard_kept.mask) and hard.mask.any()
    assert torch.isfinite(hard.depth).all() and hard.depth.min() >= 0
    assert pair_stats(verts, faces, K, (64, 64)).culled_faces == int(near.sum())


def test_degenerate_faces_give_finite_values_and_gradients():
    verts, faces = disc(0.05, segments=12)
    verts = (verts + torch.tensor([0.0, 0.0, 0.5], dtype=F64))[None]
    extra = torch.tensor([[0, 1, 1], [0, 0, 0], [0, 1, 7]])  # repeated vertex, point, sliver
    verts[0, 7] = 0.5 * (verts[0, 0] + verts[0, 1])  # vertex 7 on edge 0-1: zero-area sliver
    faces = torch.cat((faces, extra))
    K = intrinsics_matrix(200.0, 200.0, 31.5, 31.5, dtype=F64)
    x = verts.clone().requires_grad_(True)
    sil = render_silhouette(x, faces, K, (64, 64), sigma=0.5)
    out = rasterize(x, faces, K, (64, 64), vertex_colors=x[0])
    (sil.sum() + out.depth.sum() + out.bary.sum() + out.color.sum()).backward()
    assert torch.isfinite(sil).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(out.depth).all() and torch.isfinite(out.bary).all()
    assert (out.face_index < 12).all()  # degenerate faces never win a pixel


def test_inputs_are_validated_and_top_level_export_works():
    verts, faces = posed_torus()
    K = k224()
    assert hand_mesh_ros.render_silhouette is render_silhouette
    with pytest.raises(ValueError, match="sigma"):
        render_silhouette(verts, faces, K, (32, 32), sigma=0.0)
    with pytest.raises(ValueError, match="vertices"):
        render_silhouette(verts[0], faces, K, (32, 32))
    with pytest.raises(ValueError, match="faces"):
        rasterize(verts, faces.double(), K, (32, 32))
    with pytest.raises(ValueError, match="backend"):
        rasterize(verts, faces, K, (32, 32), backend="opengl")
    with pytest.raises(ValueError, match="vertex_colors"):
        rasterize(verts, faces, K, (32, 32), vertex_colors=torch.ones(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="image_size"):
        rasterize(verts, faces, K, (0, 32))


# ---------------------------------------------------------------- device / backend parity


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
def test_cuda_matches_cpu():
    verts, faces = posed_torus(dtype=torch.float32)
    K = k224(torch.float32)
    weights = torch.rand(1, 224, 224)
    outputs = []
    for device in ("cpu", "cuda"):
        x = verts.to(device).requires_grad_(True)
        sil = render_silhouette(x, faces.to(device), K.to(device), (224, 224), backend="torch")
        (grad,) = torch.autograd.grad((sil * weights.to(device)).sum(), x)
        hard = rasterize(x.detach(), faces.to(device), K.to(device), (224, 224), backend="torch")
        outputs.append([t.cpu() for t in (sil, grad, hard.mask, hard.depth, hard.face_index)])
    (sil_c, grad_c, mask_c, depth_c, face_c), (sil_g, grad_g, mask_g, depth_g, face_g) = outputs
    assert_close(sil_g, sil_c, atol=1e-5, what="silhouette")
    assert_close(grad_g, grad_c, atol=1e-4 * grad_c.abs().max().item(), what="gradient")
    assert (mask_g != mask_c).sum() <= 2
    same = mask_c & mask_g
    assert_close(depth_g[same], depth_c[same], atol=1e-5)
    assert (face_g[same] == face_c[same]).float().mean() > 0.999


# pytorch3d runs on CPU here (the shared wheel is a CPU build), where its rasterizer's backward
# is slow (about 10 s per 10^6 filled (pixel, face) slots), so the gradient cases use a small
# blur (sigma) and one hand. Numbers quoted are from docs/renderer.md ("pytorch3d backend").
requires_pytorch3d = pytest.mark.skipif(
    not pytorch3d_available(),
    reason="pytorch3d is not installed (tools/install_shared_wheels.sh installs it from "
    "../shared/wheels)",
)
# pytorch3d top-K large enough to hold every face within the blur radius of any pixel of
# posed_hands (at most 262 at 64 px, sigma 1): then it computes the torch backend's silhouette
P3D_ALL_FACES = 300
# Default top-50: per image size, (min IoU of the masks S > 0.5, max mean |S_torch - S_p3d|).
# Measured 0.8916 / 3.3e-2 (64), 0.9970 / 1.8e-3 (128), 0.9999 / 7.6e-5 (224): at low
# resolution more than 50 faces lie within sqrt(20 sigma) px of interior pixels.
P3D_TOP50_BOUNDS = {64: (0.85, 0.05), 128: (0.99, 5e-3), 224: (0.999, 2e-4)}
P3D_ATOL = 5e-5  # float32 paths differ at edge pixels; measured <= 2.3e-5


def posed_hands(size: int):
    """Two posed right hands (2, V, 3) float32, faces, and per-item K (2, 3, 3) for a
    size x (size - 8) image (fx != fy and an off-centre principal point: the conversion)."""
    model = load_hand_model("right")
    pose = torch.zeros(2, 45)
    pose[0, 3::3], pose[1, 3::3] = 0.4, 0.8  # finger curls: self-occlusion
    orient = torch.tensor([[0.3, 0.8, 0.2], [-0.2, 2.6, 0.1]])
    transl = torch.tensor([[0.0, 0.08, 0.45], [0.01, 0.07, 0.5]])
    with torch.no_grad():
        verts = model(pose=pose, global_orient=orient, transl=transl).vertices.float()
    focal = 400.0 * size / 224
    K = intrinsics_matrix(focal, 1.03 * focal, (size - 1) / 2 + 0.3, (size - 1) / 2 - 0.2)
    return verts, model.faces, torch.stack((K, K * torch.tensor([[1.05], [1.05], [1.0]])))


@requires_pytorch3d
@pytest.mark.parametrize("size", (64, 128, 224))
def test_pytorch3d_backend_matches_torch_backend(size):
    verts, faces, K = posed_hands(size)
    shape = (size, size - 8)
    ours = render_silhouette(verts, faces, K, shape, backend="torch")
    theirs = render_silhouette(verts, faces, K, shape, backend="pytorch3d")
    min_iou, max_mean = P3D_TOP50_BOUNDS[size]
    assert iou((ours > 0.5).numpy(), (theirs > 0.5).numpy()) >= min_iou
    assert (ours - theirs).abs().mean() <= max_mean
    assert (theirs <= ours + P3D_ATOL).all()  # a top-K only drops faces: never more coverage
    # every face within the blur radius kept: the same function (camera, +0.5, sigma in NDC)
    full = silhouette_pytorch3d(
        verts, faces, K, shape, DEFAULT_SIGMA, faces_per_pixel=P3D_ALL_FACES
    )
    assert_close(full, ours, atol=P3D_ATOL, what="silhouette, all faces")
    assert (full - ours).abs().mean() < 1e-6  # measured ~1e-7
    # hard rasterizer: same coverage, visible faces, depth, barycentrics and colors
    ours = rasterize(verts, faces, K, shape, vertex_colors=verts, backend="torch")
    theirs = rasterize(verts, faces, K, shape, vertex_colors=verts, backend="pytorch3d")
    assert iou(ours.mask.numpy(), theirs.mask.numpy()) >= 0.999  # measured 1.0
    same = ours.mask & theirs.mask
    assert (ours.face_index[same] == theirs.face_index[same]).float().mean() >= 0.999
    assert_close(theirs.depth[same], ours.depth[same], atol=1e-5, what="depth")  # <= 2e-6 m
    # colors = vertex positions: the visible 3D point (barycentrics of slivers vary more)
    assert_close(theirs.color[same], ours.color[same], atol=1e-5, what="point")  # <= 2e-6 m
    assert_close(theirs.bary[same], ours.bary[same], atol=1e-3, what="bary")  # <= 2.3e-4


@requires_pytorch3d
@pytest.mark.parametrize(
    "size, faces_per_pixel, max_relative",
    [(64, 100, 1e-4), (128, None, 5e-3)],  # None: the front with its default top-50
)
def test_pytorch3d_gradients_match_torch_backend(size, faces_per_pixel, max_relative):
    """d(loss)/d(vertices) of a fitting-like loss, sum (S - target)^2: the torch backend's
    analytic backward against pytorch3d's. Measured relative difference |g_p3d - g| / |g|:
    4.0e-6 (64 px, top-100: all faces), 8.6e-4 (128 px, top-50); cosine > 0.999999."""
    sigma = 0.25  # px^2: keeps pytorch3d's CPU backward at a few seconds
    verts, faces, K = posed_hands(size)
    verts, K, shape = verts[:1], K[:1], (size, size)
    target = render_silhouette(verts + torch.tensor([0.004, -0.003, 0.01]), faces, K, shape, sigma)
    grads = []
    for backend in ("torch", "pytorch3d"):
        x = verts.clone().requires_grad_(True)
        if backend == "pytorch3d" and faces_per_pixel is not None:
            sil = silhouette_pytorch3d(x, faces, K, shape, sigma, faces_per_pixel=faces_per_pixel)
        else:
            sil = render_silhouette(x, faces, K, shape, sigma, backend=backend)
        (grad,) = torch.autograd.grad(((sil - target) ** 2).sum(), x)
        grads.append(grad.flatten())
    ours, theirs = grads
    assert ours.norm() > 0
    assert torch.nn.functional.cosine_similarity(ours, theirs, dim=0) > 0.99999
    assert (theirs - ours).norm() / ours.norm() < max_relative


# ---------------------------------------------------------------- timing (printed, not asserted)


def timing_report(sizes=(64, 128, 224), repeats=7) -> dict[int, float]:
    """Forward+backward seconds (best of ``repeats``, wall clock) of the soft silhouette of
    a 1500-face mesh on CPU with 2 threads; also prints the pair counts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    verts, faces = posed_torus(dtype=torch.float32)
    times = {}
    try:
        for size in sizes:
            focal = 400.0 * size / 224
            K = intrinsics_matrix(focal, focal, (size - 1) / 2, (size - 1) / 2)
            x = verts.clone().requires_grad_(True)
            runs = []
            for _ in range(repeats + 1):  # the first run warms up
                start = time.perf_counter()
                render_silhouette(x, faces, K, (size, size)).sum().backward()
                runs.append(time.perf_counter() - start)
            times[size] = min(runs[1:])
            stats = pair_stats(verts, faces, K, (size, size), sigma=1.0)
            print(
                f"{size}x{size}: fwd+bwd {1e3 * times[size]:.1f} ms (best of {repeats}), "
                f"{stats.total_pairs} pairs = {stats.total_pairs / stats.dense_pairs:.2%} "
                f"of the dense {stats.dense_pairs}"
            )
    finally:
        torch.set_num_threads(threads)
    return times


def test_timing_report_runs():
    times = timing_report(sizes=(64,), repeats=1)
    assert times[64] > 0


if __name__ == "__main__":
    timing_report()
