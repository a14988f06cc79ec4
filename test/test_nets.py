"""DHPE networks: ResNet names/counts, CPM heat maps, keypoint extraction, mesh estimator, DHPE."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.camera import crop_intrinsics, project
from hand_mesh_ros.nets import (
    CPM,
    CPMConfig,
    MeshEstimator,
    MeshEstimatorConfig,
    ResNet,
    cells_to_pixels,
    gaussian_heatmaps,
    heatmap_argmax,
    load_torchvision_weights,
    pixels_to_cells,
    soft_argmax,
)
from hand_mesh_ros.nets.mesh_estimator import encode_skeleton, normalise_keypoints_2d

# torchvision's documented parameter counts (pytorch.org/vision, models table).
TORCHVISION_PARAMS = {"resnet50": 25_557_032, "resnet18": 11_689_512}
SMALL_CPM = CPMConfig(num_stages=3, channels=16, kernel_size=3, convs_per_stage=2,
                      stage1_channels=32)


def _torchvision_resnet_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of torchvision's resnet18/50, built from the architecture
    facts (He et al. 2016 Table 1; torchvision v1.5 blocks), independently of the module."""
    blocks = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[arch]
    bottleneck = arch == "resnet50"
    expansion = 4 if bottleneck else 1
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name, out_ch, in_ch, k):
        shapes[f"{name}.weight"] = (out_ch, in_ch, k, k)

    def bn(name, ch):
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{p}"] = (ch,)
        shapes[f"{name}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_ch = 64
    for li, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for b in range(n):
            p = f"layer{li + 1}.{b}"
            out_ch = width * expansion
            if bottleneck:
                convs = [(in_ch, width, 1), (width, width, 3), (width, out_ch, 1)]
            else:
                convs = [(in_ch, width, 3), (width, out_ch, 3)]
            for ci, (i, o, k) in enumerate(convs, start=1):
                conv(f"{p}.conv{ci}", o, i, k)
                bn(f"{p}.bn{ci}", o)
            stride = 2 if (b == 0 and li > 0) else 1
            if b == 0 and (stride != 1 or in_ch != out_ch):
                conv(f"{p}.downsample.0", out_ch, in_ch, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
    shapes["fc.weight"] = (1000, in_ch)
    shapes["fc.bias"] = (1000,)
    return shapes


def _is_buffer(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


@pytest.mark.parametrize("arch", ["resnet50", "resnet18"])
def test_resnet_matches_torchvision_names_shapes_and_counts(arch):
    expected = _torchvision_resnet_shapes(arch)
    assert sum(torch.Size(s).numel() for k, s in expected.items() if not _is_buffer(k)) == (
        TORCHVISION_PARAMS[arch]
    )
    model = ResNet(arch)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[arch]
    if arch == "resnet50":
        assert got["layer3.5.bn2.running_var"] == (256,)
        assert got["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    else:
        assert "layer1.0.downsample.0.weight" not in got
        assert got["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)


@pytest.mark.parametrize("arch,dim", [("resnet50", 2048), ("resnet18", 512)])
def test_resnet_feature_shapes(arch, dim):
    model = ResNet(arch).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 224, 224))
    assert feats.pooled.shape == (1, dim) and model.feature_dim == dim
    assert feats.c3.shape == (1, dim // 4, 28, 28)  # stride 8: the CPM's input
    assert feats.c5.shape == (1, dim, 7, 7)
    assert_close(feats.pooled, feats.c5.mean(dim=(2, 3)), atol=1e-5, what="global pooling")


def test_resnet_state_dict_round_trip_strict():
    """A checkpoint with torchvision's keys (random values) loads strictly, values intact."""
    expected = _torchvision_resnet_shapes("resnet18")
    checkpoint = {
        k: torch.randint(0, 100, s) if k.endswith("num_batches_tracked") else torch.randn(s)
        for k, s in expected.items()
    }
    model = ResNet("resnet18")
    model.load_state_dict(checkpoint, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key
    headless = ResNet("resnet18", with_fc=False)
    load_torchvision_weights(headless, checkpoint)  # fc.* ignored, everything else strict
    assert torch.equal(headless.layer4[1].bn2.running_var, checkpoint["layer4.1.bn2.running_var"])
    with pytest.raises(RuntimeError):
        load_torchvision_weights(headless, {k: v for k, v in checkpoint.items() if "bn1" not in k})
    headless.eval(), model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_close(headless(x), model(x), atol=1e-5, what="same weights, same feature")


def test_cpm_stage_shapes():
    cpm = CPM(128, SMALL_CPM)
    out = cpm(torch.randn(2, 128, 28, 28))
    assert len(out.stages) == 3
    for stage in out.stages:
        assert stage.shape == (2, 21, 32, 32)
    assert out.final is out.stages[-1]
    # Default (PoseNet-like) stages: 7x7 convs over [trunk features, previous beliefs].
    default = CPM(512)
    assert default.refiners[0][0].weight.shape == (128, 128 + 21, 7, 7)
    assert len(default.refiners) == 2


def test_heatmap_cell_convention():
    # 32 cells over 224 px: cell i covers [7i - 0.5, 7i + 6.5), centre 7i + 3.
    assert_close(cells_to_pixels(torch.tensor([0.0, 31.0, -0.5])), [3.0, 220.0, -0.5])
    assert_close(pixels_to_cells(torch.tensor([3.0, 223.5])), [0.0, 31.5])


def test_argmax_recovers_sub_pixel_location():
    truth = torch.tensor([[[101.3, 57.8], [10.9, 200.2], [150.0, 111.45], [17.7, 17.1]]])
    maps = gaussian_heatmaps(truth, sigma=1.5)
    assert maps.shape == (1, 4, 32, 32)
    found, peak = heatmap_argmax(maps)
    err = (found - truth).norm(dim=-1)
    assert err.max() < 0.5  # the requirement (crop pixels)
    assert err.max() < 0.01  # a log-parabola is exact for a Gaussian peak
    assert (peak > 0.8).all()
    nearest_cell_err = (cells_to_pixels(pixels_to_cells(truth).round()) - truth).norm(dim=-1)
    assert nearest_cell_err.max() > 1.0  # plain argmax would not meet it


def test_soft_argmax_accurate_and_differentiable():
    truth = torch.tensor([[[101.3, 57.8], [120.0, 130.5]]])
    maps = gaussian_heatmaps(truth, sigma=1.0)
    noisy = maps + 0.02 * torch.rand(maps.shape)  # background noise far from the peaks
    for heat in (maps, noisy):
        assert (soft_argmax(heat) - truth).norm(dim=-1).max() < 0.5
    maps = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    for window in (None, 1):
        def fn(m, window=window):
            return soft_argmax(m, power=2.0, window=window, crop_size=42)

        assert torch.autograd.gradcheck(fn, (maps,))
    out = soft_argmax(maps)
    out.sum().backward()
    assert maps.grad.abs().sum() > 0


@dataclass(frozen=True)
class _Skeleton:
    keypoints_3d: torch.Tensor


class _LinearSkeleton:
    """A fixed differentiable stand-in for the projection operator: a hand-sized skeleton at
    0.6 m whose points move linearly with theta (the estimator only needs keypoints_3d)."""

    def __init__(self):
        gen = torch.Generator().manual_seed(1)
        self.base = torch.randn(21, 3, generator=gen) * 0.04 + torch.tensor([0.0, 0.0, 0.6])
        self.basis = torch.randn(63, 63, generator=gen) * 0.01

    def __call__(self, theta: torch.Tensor) -> _Skeleton:
        return _Skeleton(self.base + (theta @ self.basis).reshape(-1, 21, 3))


def test_mesh_estimator_dims_and_initial_params():
    mean_pose = torch.linspace(-0.2, 0.3, 45)
    est = MeshEstimator(MeshEstimatorConfig(feature_dim=2048), mean_pose)
    assert est.regressor.weight.shape == (63, 2048 + 42 + 63)  # 2153 x 63 (paper)
    assert est.refiner.weight.shape == (42, 2216)  # 2216 x 42 (paper)
    theta0 = est.initial_params(2)
    assert_close(theta0[:, :45], mean_pose.expand(2, 45))
    assert_close(theta0[:, 45:], torch.zeros(2, 18))
    with torch.no_grad():
        est.regressor.weight.zero_()
        est.regressor.bias.zero_()
        est.refiner.weight.zero_()
    joints = torch.rand(2, 21, 2) * 224
    steps = est(torch.randn(2, 2048), joints, _LinearSkeleton())
    assert len(steps) == 3
    for step in steps:  # zero offsets: every iteration stays at theta_0, joints unchanged
        assert_close(step.params, theta0)
        assert_close(step.refined_keypoints_2d, joints, atol=1e-4)


def test_mesh_estimator_gradients_reach_all_weights():
    est = MeshEstimator(MeshEstimatorConfig(feature_dim=8), torch.zeros(45))
    project_fn = _LinearSkeleton()
    steps = est(torch.randn(3, 8), torch.rand(3, 21, 2) * 224, project_fn)
    target = torch.rand(3, 21, 2) * 224
    loss = sum(((s.refined_keypoints_2d - target) ** 2).mean() for s in steps)
    loss = loss + ((steps[-1].projection.keypoints_3d - project_fn.base) ** 2).sum()
    loss.backward()
    for name, p in est.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.fixture
def one_thread():
    """Hundreds of tiny ops: one intra-op thread avoids thread hand-off costs, which dominate
    (20x slower) when the machine's cores are busy with other work."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("feature_dim", [16, 0])
def test_mesh_estimator_overfits_tiny_batch(feature_dim, one_thread):
    """A real learning check: 4 samples of evidence -> skeletons, loss drops > 10x."""
    project_fn = _LinearSkeleton()
    k = crop_intrinsics()
    theta_gt = torch.randn(4, 63) * 0.3
    kp_gt = project_fn(theta_gt).keypoints_3d
    j2d_gt = project(kp_gt, k)
    feature = torch.randn(4, feature_dim) if feature_dim else None
    joints_in = j2d_gt + torch.randn(4, 21, 2) * 8.0  # noisy detector keypoints
    est = MeshEstimator(MeshEstimatorConfig(feature_dim=feature_dim), torch.zeros(45))
    opt = torch.optim.Adam(est.parameters(), lr=3e-3)

    def loss_fn():
        steps = est(feature, joints_in, project_fn)
        skel = sum(((encode_skeleton(s.projection.keypoints_3d) - encode_skeleton(kp_gt)) ** 2)
                   .sum(1).mean() for s in steps)
        target = normalise_keypoints_2d(j2d_gt)
        ref = sum(((normalise_keypoints_2d(s.refined_keypoints_2d) - target) ** 2)
                  .sum(1).mean() for s in steps)
        return skel + ref

    first = loss_fn().item()
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    last = loss_fn().item()
    assert last < first / 10.0, (first, last)


def test_dhpe_forward_shapes_and_backward_light_backbone():
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.handmodel.prior import PosePrior
    from hand_mesh_ros.nets import DHPE, DHPEConfig
    from hand_mesh_ros.training import DHPELoss, DHPETargets, LossConfig

    hand = load_hand_model("right")
    mean_pose = PosePrior.from_model(hand).mean_pose()
    config = DHPEConfig(backbone="resnet18", cpm=SMALL_CPM, silhouette_size=24)
    net = DHPE(config, hand, mean_pose)
    assert net.mesh_estimator.regressor.in_features == 512 + 42 + 63  # feature_dim flows in
    image = torch.rand(2, 3, 224, 224)  # RGB in [0, 1]
    out = net(image)
    v = hand.num_vertices
    assert len(out.heatmaps) == 3 and all(h.shape == (2, 21, 32, 32) for h in out.heatmaps)
    assert out.keypoints_2d.shape == (2, 21, 2) and out.feature.shape == (2, 512)
    assert len(out.iterations) == 3
    for it in out.iterations:
        assert it.params.shape == (2, 63) and it.vertices.shape == (2, v, 3)
        assert it.keypoints_3d.shape == (2, 21, 3) and it.keypoints_2d.shape == (2, 21, 2)
        assert it.refined_keypoints_2d.shape == (2, 21, 2)
        assert_close(it.keypoints_2d, project(it.keypoints_3d, crop_intrinsics()), atol=1e-3)
    # only the final iteration's silhouette is rendered (the only one a loss uses)
    assert [it.silhouette is None for it in out.iterations] == [True, True, False]
    final = out.final
    assert final.silhouette.shape == (2, 24, 24)
    # Small initial offsets: the middle MCP stays near the crop centre, the hand is visible.
    assert (final.keypoints_2d[:, 9] - 111.5).abs().max() < 20.0
    assert (final.silhouette.amax(dim=(1, 2)) > 0.9).all()
    # The image-free entry point reproduces the mesh part from the same evidence, and
    # renders every iteration's silhouette.
    again = net.estimate_mesh(out.feature, out.keypoints_2d)
    assert_close(again[-1].vertices, final.vertices, atol=1e-6)
    assert_close(again[-1].silhouette, final.silhouette, atol=1e-6)
    assert all(it.silhouette.shape == (2, 24, 24) for it in again)

    mask = torch.zeros(2, 224, 224)
    mask[:, 60:170, 70:150] = 1.0
    target3d = final.keypoints_3d.detach() + torch.tensor([0.004, -0.003, 0.01])
    targets = DHPETargets(project(target3d, crop_intrinsics()), target3d, mask=mask)
    loss = DHPELoss.from_hand_model(LossConfig(), hand)
    terms = loss(out, targets, masked_feature=net.extract_feature(image * mask[:, None]))
    assert torch.isfinite(terms.total) and terms.total > 0
    terms.total.backward()
    params = dict(net.named_parameters())
    for name in ("backbone.conv1.weight", "backbone.layer4.1.conv2.weight", "cpm.trunk.0.weight",
                 "cpm.refiners.1.0.weight", "mesh_estimator.regressor.weight",
                 "mesh_estimator.refiner.weight"):
        grad = params[name].grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name
    assert not any(p.requires_grad for p in hand.parameters())


def test_dhpe_keypoints_only_without_silhouette():
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.nets import DHPE, DHPEConfig

    hand = load_hand_model("right")
    config = DHPEConfig(backbone="resnet18", cpm=SMALL_CPM, use_feature=False,
                        silhouette_size=None)
    net = DHPE(config, hand, torch.zeros(45))
    assert net.mesh_estimator.regressor.in_features == 42 + 63
    joints = torch.rand(3, 21, 2) * 224
    iterations = net.estimate_mesh(None, joints)
    assert len(iterations) == 3 and iterations[-1].silhouette is None
    assert iterations[-1].vertices.shape == (3, hand.num_vertices, 3)
