"""The paper's 2D evidence estimator (ResNet + CPM) as an alternative 2D keypoint front end.

DHPE (Baek et al., CVPR 2019, Sec. 3.1) estimates 2D evidence from a 224 x 224 hand crop: a
ResNet backbone and a CPM head give 21 heat maps of 32 x 32, and the 2D joints are their
maxima. Here that estimator re-estimates the keypoints of hands another detector found:

    DHPEEvidence(path).refine_detections(image_rgb, detections) -> list[Detection2D]

Per detection: the crop is the paper's normalisation box, 1.5 x the detector's keypoint box
(``fitting.roi.hand_roi``), resampled to crop_size px with bilinear interpolation and zero
padding outside the image. Crop pixel c covers image [left + c / s, left + (c + 1) / s]
(s = crop px per image px), i.e. image u = left + (c + 0.5) / s -- the map of
``HandRoi.to_roi_pixels``. The crop goes in as RGB in [0, 1] (the net normalises it with
ImageNet statistics itself, as DHPE does) and all hands go through the net as one batch;
keypoints are the sub-cell argmax of the final stage (``heatmap_argmax``), confidence the peak
value clipped to [0, 1]. Left hands use the same network unmirrored:
the paper's heat maps mark keypoint locations in the image, which does not depend on the side.

Weights file (``save_evidence_weights`` / ``load_evidence_net``, read with
``weights.load_weights_file``)::

    {"format": EVIDENCE_FORMAT, "config": EvidenceConfig.to_dict(), "state_dict": {...}}

The state-dict names are DHPE's (``nets/dhpe.py``): ``backbone.{conv1,bn1,layer1,layer2}.*``
and ``cpm.*``. The CPM reads the backbone's stride-8 map (``layer2``), so ``layer3/4`` (only
used for DHPE's pooled feature) are not part of this net. From a trained DHPE:
``save_evidence_weights(evidence_net_from_dhpe(dhpe), path)``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hand_mesh_ros.camera import CROP_SIZE
from hand_mesh_ros.detect.mediapipe_hands import keypoint_bbox
from hand_mesh_ros.detect.types import Detection2D
from hand_mesh_ros.fitting.roi import HandRoi, hand_roi
from hand_mesh_ros.nets.cpm import CPM, CPMConfig, CPMOutput
from hand_mesh_ros.nets.heatmaps import heatmap_argmax
from hand_mesh_ros.nets.resnet import RESNET_LAYERS, ResNet, normalize_image
from hand_mesh_ros.weights import load_weights_file

LOG = logging.getLogger(__name__)
EVIDENCE_FORMAT = "hand_mesh_ros.dhpe_evidence/1"
_FILE_KEYS = {"format", "config", "state_dict"}
UINT8_MAX = 255.0  # image intensities are scaled to [0, 1], the nets' input range


@dataclass(frozen=True, kw_only=True)
class EvidenceConfig:
    """backbone: "resnet50" (paper) or "resnet18"; cpm: the CPM head; crop_size: input px."""

    backbone: str = "resnet50"
    cpm: CPMConfig = field(default_factory=CPMConfig)
    crop_size: int = CROP_SIZE

    def __post_init__(self) -> None:
        if self.backbone not in RESNET_LAYERS:
            raise ValueError(f"backbone must be one of {sorted(RESNET_LAYERS)}")
        if not isinstance(self.cpm, CPMConfig):
            raise ValueError(f"cpm must be a CPMConfig, got {type(self.cpm).__name__}")
        if isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int):
            raise ValueError(f"crop_size must be an int, got {self.crop_size!r}")
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")

    def to_dict(self) -> dict:
        """Plain str/int dict (loadable with ``weights_only=True``)."""
        return {"backbone": self.backbone, "crop_size": self.crop_size, "cpm": asdict(self.cpm)}

    @classmethod
    def from_dict(cls, data: object) -> EvidenceConfig:
        """Inverse of ``to_dict``; ValueError for missing, unknown or invalid entries."""
        if not isinstance(data, dict) or set(data) != {"backbone", "crop_size", "cpm"}:
            raise ValueError(f"config must be a dict with backbone, crop_size, cpm: {data!r}")
        cpm = data["cpm"]
        names = {f.name for f in fields(CPMConfig)}
        if not isinstance(cpm, dict) or set(cpm) != names:
            raise ValueError(f"config['cpm'] must be a dict with keys {sorted(names)}: {cpm!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in cpm.values()):
            raise ValueError(f"config['cpm'] values must be ints: {cpm!r}")
        return cls(backbone=data["backbone"], cpm=CPMConfig(**cpm), crop_size=data["crop_size"])


class ResNetStride8(nn.Module):
    """A ResNet up to ``layer2`` (stride 8) with ResNet's names (conv1, bn1, layer1, layer2)."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        full = ResNet(arch, with_fc=False)
        self.conv1, self.bn1, self.relu = full.conv1, full.bn1, full.relu
        self.maxpool = full.maxpool
        self.layer1, self.layer2 = full.layer1, full.layer2
        self.out_channels = full.stage_channels[1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) normalised RGB -> (B, 512 | 128, H/8, W/8), like ResNet's c3."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        return self.layer2(self.layer1(x))


class EvidenceNet(nn.Module):
    """DHPE's 2D evidence estimator: ``backbone`` (to stride 8) + ``cpm``, DHPE's names."""

    def __init__(self, config: EvidenceConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetStride8(config.backbone)
        self.cpm = CPM(self.backbone.out_channels, config.cpm)

    @property
    def device(self) -> torch.device:
        return self.cpm.trunk[0].weight.device

    def forward(self, image: torch.Tensor) -> CPMOutput:
        """image (B, 3, C, C) RGB in [0, 1] (C = crop_size; normalised here with ImageNet
        statistics, as ``DHPE`` does) -> (B, 21, M, M) maps per CPM stage (final = last)."""
        c = self.config.crop_size
        if image.dim() != 4 or image.shape[1:] != (3, c, c):
            raise ValueError(f"image must be (B, 3, {c}, {c}), got {tuple(image.shape)}")
        return self.cpm(self.backbone(normalize_image(image)))

    def keypoints(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image as ``forward`` -> (keypoints (B, 21, 2) crop px, peaks (B, 21)) of the final
        heat maps (``heatmap_argmax``)."""
        return heatmap_argmax(self(image).final, crop_size=self.config.crop_size)


def evidence_net_from_dhpe(dhpe: nn.Module) -> EvidenceNet:
    """The evidence part of a ``nets.dhpe.DHPE`` (its ``backbone`` up to layer2 and ``cpm``),
    as an EvidenceNet sharing no storage with it."""
    cfg = dhpe.config
    net = EvidenceNet(EvidenceConfig(backbone=cfg.backbone, cpm=cfg.cpm, crop_size=cfg.crop_size))
    wanted = net.state_dict().keys()
    source = dhpe.state_dict()
    net.load_state_dict({k: source[k].detach().clone() for k in wanted}, strict=True)
    return net.eval()


def save_evidence_weights(net: EvidenceNet, path: str | Path) -> None:
    """Write ``net``'s config and weights (CPU tensors) in the EVIDENCE_FORMAT layout."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(
        {"format": EVIDENCE_FORMAT, "config": net.config.to_dict(), "state_dict": state}, Path(path)
    )


def load_evidence_net(path: str | Path, *, device: torch.device | str | None = None):
    """EvidenceNet in eval mode from a ``save_evidence_weights`` file (device None: CPU).

    Raises FileNotFoundError when ``path`` does not exist, ValueError when it is not a torch
    file, not in EVIDENCE_FORMAT, or its weights do not match its config.
    """
    path = Path(path)
    data = load_weights_file(path, what="DHPE evidence weights", expected_format=EVIDENCE_FORMAT)
    if set(data) != _FILE_KEYS:
        raise ValueError(f"{path}: expected a dict with keys {sorted(_FILE_KEYS)}")
    try:
        net = EvidenceNet(EvidenceConfig.from_dict(data["config"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid config: {exc}") from exc
    _check_state_dict(path, net, data["state_dict"])
    net.load_state_dict(data["state_dict"], strict=True)
    return net.to(device or "cpu").eval()


def _check_state_dict(path: Path, net: EvidenceNet, state: object) -> None:
    """ValueError naming missing/unexpected keys or shape mismatches."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: state_dict is not a dict")
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(state)
        if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: weights do not match the config: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), "
            f"wrong shape {wrong[:5]} ({len(wrong)})"
        )


def crop_matrix(roi: HandRoi, index: int) -> np.ndarray:
    """(2, 3) affine image px -> crop px of hand ``index``: c = (u - left) * s - 0.5."""
    s = float(roi.scale[index])
    left_top = (roi.centre[index] - roi.side[index] / 2.0).double().cpu().numpy()
    return np.array([[s, 0.0, -left_top[0] * s - 0.5], [0.0, s, -left_top[1] * s - 0.5]])


def crop_hand(image_rgb: np.ndarray, roi: HandRoi, index: int) -> np.ndarray:
    """(size, size, 3) uint8 crop of hand ``index``: bilinear, zeros outside the image."""
    return cv2.warpAffine(
        image_rgb,
        crop_matrix(roi, index),
        (roi.size, roi.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def crop_to_image(points: torch.Tensor, roi: HandRoi) -> torch.Tensor:
    """(B, N, 2) crop px -> (B, N, 2) image px: u = left + (c + 0.5) / s (inverse of
    ``HandRoi.to_roi_pixels``)."""
    left_top = roi.centre - roi.side[:, None] / 2.0
    return left_top[:, None, :] + (points + 0.5) / roi.scale[:, None, None]


class DHPEEvidence:
    """Re-estimates detections' keypoints with a trained EvidenceNet (see the module doc)."""

    def __init__(self, path: str | Path, *, device: torch.device | str | None = None) -> None:
        self.net = load_evidence_net(path, device=device)

    def crops(self, image_rgb: np.ndarray, detections: list[Detection2D]):
        """(roi, crops (B, C, C, 3) uint8) for the detections' keypoint boxes."""
        keypoints = torch.tensor(np.stack([d.keypoints for d in detections]), dtype=torch.float64)
        roi = hand_roi(keypoints, self.net.config.crop_size)
        return roi, np.stack([crop_hand(image_rgb, roi, i) for i in range(len(detections))])

    def refine_detections(
        self, image_rgb: np.ndarray, detections: list[Detection2D]
    ) -> list[Detection2D]:
        """New detections with this net's keypoints (image px) and peak confidences; side,
        score and world_keypoints are the detector's, bbox is recomputed. A keypoint the net
        gives as non-finite keeps the detector's keypoint and confidence (with a warning)."""
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"need an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if not detections:
            return []
        roi, crops = self.crops(np.ascontiguousarray(image), detections)
        batch = torch.from_numpy(crops).to(self.net.device).permute(0, 3, 1, 2)
        with torch.inference_mode():
            keypoints, peaks = self.net.keypoints(batch.float() / UINT8_MAX)
        image_kp = crop_to_image(keypoints.double().cpu(), roi).numpy()
        confidence = peaks.double().cpu().clamp(0.0, 1.0).numpy()
        height, width = image.shape[:2]
        return [
            _updated(det, image_kp[i], confidence[i], width, height)
            for i, det in enumerate(detections)
        ]


def _updated(
    det: Detection2D, keypoints: np.ndarray, confidence: np.ndarray, width: int, height: int
) -> Detection2D:
    """``det`` with new keypoints/confidence; non-finite entries fall back to the detector's."""
    bad = ~(np.isfinite(keypoints).all(axis=1) & np.isfinite(confidence))
    if bad.any():
        LOG.warning("DHPE evidence gave %d non-finite keypoints: keeping mediapipe's", bad.sum())
        keypoints = np.where(bad[:, None], det.keypoints, keypoints)
        confidence = np.where(bad, det.confidence, confidence)
    return Detection2D(
        keypoints=keypoints,
        confidence=confidence,
        side=det.side,
        score=det.score,
        world_keypoints=det.world_keypoints,
        bbox=keypoint_bbox(keypoints, width, height),
    )
