"""Optional pytorch3d backend behind ``render_silhouette`` / ``rasterize``.

Only used when pytorch3d is importable. Camera conversion (pytorch3d docs, "Cameras"):
pytorch3d's view frame has +X left, +Y up, +Z forward, so the OpenCV camera frame maps to it
with R = diag(-1, -1, 1), T = 0 (pytorch3d applies X_view = X_world @ R + T). With
``in_ndc=False`` the focal length and principal point are in pixels of a screen whose origin
is the top-left *corner* of the image, so pixel centres sit at +0.5: principal point
(cx + 0.5, cy + 0.5) for our integer-centre convention. Then a camera-frame point lands at
column u = fx * x / z + cx, row v = fy * y / z + cy, as ``camera.project`` (zero skew only).

Differences from the torch backend: the silhouette sums only the ``faces_per_pixel``
nearest faces within the blur radius (pytorch3d's top-K), and the near plane clips
(``z_clip_value``) instead of culling. Distances are in NDC units, where the shorter image
side spans 2, so sigma_ndc = sigma_px / (min(H, W) / 2)^2.
"""

from __future__ import annotations

import importlib.util

import torch

from hand_mesh_ros.render.pairs import NEAR_PLANE, SOFT_CUTOFF, check_image_size

BACKENDS = ("auto", "torch", "pytorch3d")
SOFT_FACES_PER_PIXEL = 50  # pytorch3d top-K faces blended per pixel for the silhouette


def pytorch3d_available() -> bool:
    """True when the ``pytorch3d`` package can be imported."""
    return importlib.util.find_spec("pytorch3d") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """ "auto" -> "pytorch3d" when importable and ``device`` is CUDA, else "torch"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "pytorch3d" and not pytorch3d_available():
        raise ImportError("backend='pytorch3d' requested but pytorch3d is not importable")
    if backend == "auto":
        use = pytorch3d_available() and torch.device(device).type == "cuda"
        return "pytorch3d" if use else "torch"
    return backend


def _fragments(vertices, faces, K, image_size, blur_radius: float, faces_per_pixel: int):
    from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
    from pytorch3d.structures import Meshes

    height, width = check_image_size(image_size)
    batch, device = vertices.shape[0], vertices.device
    k = K.to(device=device, dtype=torch.float32)
    k = k.expand(batch, 3, 3) if k.dim() == 2 else k
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


def silhouette_pytorch3d(vertices, faces, K, image_size, sigma: float) -> torch.Tensor:
    """SoftRas silhouette via pytorch3d's rasterizer; same contract as ``render_silhouette``."""
    height, width = check_image_size(image_size)
    sigma_ndc = sigma / (min(height, width) / 2.0) ** 2
    frags = _fragments(
        vertices, faces, K, image_size, SOFT_CUTOFF * sigma_ndc, SOFT_FACES_PER_PIXEL
    )
    # pytorch3d's dists are squared distances in NDC, negative inside the face.
    coverage = torch.sigmoid(-frags.dists / sigma_ndc) * (frags.pix_to_face >= 0)
    return (1.0 - torch.prod(1.0 - coverage, dim=-1)).to(vertices.dtype)


def rasterize_pytorch3d(vertices, faces, K, image_size, *, vertex_colors=None):
    """Hard rasterization via pytorch3d; same contract as ``rasterize``."""
    from hand_mesh_ros.render.hard import _batched_colors, assemble, interpolate_colors

    frags = _fragments(vertices, faces, K, image_size, 0.0, 1)
    batch, num_faces = vertices.shape[0], faces.shape[0]
    packed = frags.pix_to_face[..., 0].reshape(-1)  # b * F + f, -1 where empty
    covered = packed >= 0
    item = packed[covered]
    bary = frags.bary_coords[..., 0, :].reshape(-1, 3)[covered].to(vertices.dtype)
    depth = frags.zbuf[..., 0].reshape(-1)[covered].to(vertices.dtype)
    color = None
    if vertex_colors is not None:
        colors = _batched_colors(vertex_colors.to(vertices.device), batch, vertices.shape[1])
        faces_long = faces.to(device=vertices.device, dtype=torch.long)
        color = interpolate_colors(colors, faces_long, item, bary.to(colors.dtype), num_faces)
    shape = tuple(frags.pix_to_face.shape[:3])
    return assemble(covered, depth, item % num_faces, bary, color, shape)
