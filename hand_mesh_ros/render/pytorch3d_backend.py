"""pytorch3d backend of ``render_silhouette`` / ``rasterize`` (optional package).

``pytorch3d`` itself is imported lazily inside ``_fragments``, so this module imports without
it; ``backends.resolve_backend`` decides whether it is used.

Camera conversion (pytorch3d docs, "Cameras"): pytorch3d's view frame has +X left, +Y up,
+Z forward, so the OpenCV camera frame maps to it with R = diag(-1, -1, 1), T = 0 (pytorch3d
applies X_view = X_world @ R + T). With ``in_ndc=False`` the focal length and principal point
are in pixels of a screen whose origin is the top-left *corner* of the image, so pixel
centres sit at +0.5: principal point (cx + 0.5, cy + 0.5) for our integer-centre convention.
Then a camera-frame point lands at column u = fx * x / z + cx, row v = fy * y / z + cy, as
``camera.project`` (zero skew only).

Differences from the torch backend: the silhouette sums only the ``SOFT_FACES_PER_PIXEL``
nearest faces within the blur radius (pytorch3d's top-K), the near plane clips
(``z_clip_value``) instead of culling, and ``cull_backfaces`` is not applied. Distances are
in NDC units, where the shorter image side spans 2, so sigma_ndc = sigma_px / (min(H, W) / 2)^2.
Computation is in float32; results are cast back to the dtype of ``vertices``.
"""

from __future__ import annotations

import torch

from hand_mesh_ros.camera import batched_intrinsics
from hand_mesh_ros.render.pairs import NEAR_PLANE, SOFT_CUTOFF, check_image_size, check_inputs
from hand_mesh_ros.render.result import RasterResult, assemble

SOFT_FACES_PER_PIXEL = 50  # pytorch3d top-K faces blended per pixel for the silhouette


def _fragments(vertices, faces, K, image_size, blur_radius: float, faces_per_pixel: int):
    """pytorch3d ``Fragments`` (pix_to_face, zbuf, bary_coords, dists: (B, H, W, k))."""
    from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
    from pytorch3d.structures import Meshes

    height, width = check_inputs(vertices, faces, K, image_size)
    batch, device = vertices.shape[0], vertices.device
    k = batched_intrinsics(K.to(device=device, dtype=torch.float32), batch)
    if torch.any(k[:, 0, 1] != 0):
        raise ValueError("the pytorch3d backend supports zero-skew intrinsics only")
    cameras = PerspectiveCameras(
        focal_length=torch.stack((k[:, 0, 0], k[:, 1, 1]), dim=-1),
        principal_point=k[:, :2, 2] + 0.5,
        R=torch.diag(torch.tensor([-1.0, -1.0, 1.0], device=device)).expand(batch, 3, 3),
        T=torch.zeros(batch, 3, device=device),
        in_ndc=False,
        image_size=torch.tensor([[height, width]], device=device).expand(batch, 2),
        device=device,
    )
    settings = RasterizationSettings(
        image_size=(height, width),
        blur_radius=blur_radius,
        faces_per_pixel=faces_per_pixel,
        perspective_correct=True,
        z_clip_value=NEAR_PLANE,
    )
    faces = faces.to(device=device, dtype=torch.long)
    meshes = Meshes(verts=vertices.float(), faces=faces.expand(batch, -1, -1).contiguous())
    return MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)


def silhouette_pytorch3d(
    vertices, faces, K, image_size, sigma: float, *, faces_per_pixel: int = SOFT_FACES_PER_PIXEL
) -> torch.Tensor:
    """SoftRas silhouette via pytorch3d's rasterizer; the contract of
    ``front.render_silhouette``: (B, V, 3) -> (B, H, W) in [0, 1].

    faces_per_pixel: pytorch3d's top-K; with at least as many as the faces within
    sqrt(SOFT_CUTOFF * sigma) px of any pixel, the result equals the torch backend's.
    """
    height, width = check_image_size(image_size)
    sigma_ndc = sigma / (min(height, width) / 2.0) ** 2
    frags = _fragments(vertices, faces, K, image_size, SOFT_CUTOFF * sigma_ndc, faces_per_pixel)
    # pytorch3d's dists are squared distances in NDC, negative inside the face.
    coverage = torch.sigmoid(-frags.dists / sigma_ndc) * (frags.pix_to_face >= 0)
    return (1.0 - torch.prod(1.0 - coverage, dim=-1)).to(vertices.dtype)


def rasterize_pytorch3d(vertices, faces, K, image_size, *, vertex_colors=None) -> RasterResult:
    """Hard rasterization via pytorch3d; the contract of ``front.rasterize``."""
    frags = _fragments(vertices, faces, K, image_size, 0.0, 1)
    packed = frags.pix_to_face[..., 0].reshape(-1)  # b * F + f, -1 where empty
    covered = packed >= 0
    bary = frags.bary_coords[..., 0, :].reshape(-1, 3)[covered].to(vertices.dtype)
    depth = frags.zbuf[..., 0].reshape(-1)[covered].to(vertices.dtype)
    return assemble(
        covered,
        packed[covered],
        depth,
        bary,
        tuple(frags.pix_to_face.shape[:3]),
        faces=faces,
        vertex_colors=vertex_colors,
        num_vertices=vertices.shape[1],
    )
