"""The articulation a cold-started hand begins from, for the hand model being fitted.

The shipped keypoint regressor (``nets/keypoint_regressor.py``) is trained for the right hand
of the open model: its pose is that model's axis-angle, in that model's canonical axes. For
the open model (left hands fitted mirrored) it is used as it is. For a user's MANO it is
transferred through anatomical joint angles (``handmodel/convert.py`` ``transfer_pose``: the
same flexion, abduction and twist of every joint, on MANO's own rest skeleton and side), then
PnP and refinement fit MANO to the keypoints.

Measured on the three RHD images of ``../shared/data/hands`` with a synthetic MANO pair laid
along x like MANO's release (test/synthetic_mano.py; mean 2D error px / PA-MPJPE mm):

    start                      0 iterations   5 iterations   20 iterations
    open model, own regressor  6.28 / 13.4    5.84 / 12.1    5.32 / 11.7
    MANO, transferred angles   6.06 / 13.7    5.32 / 10.9    5.35 / 11.0
    MANO, raw open axis-angle  10.5 / 25.5    9.28 / 24.2    5.64 / 13.5
    MANO, prior's mean pose    12.1 / 22.8    9.61 / 19.9    5.32 / 11.2

The transferred start is as good as the open model's own, so no regressor is retrained for
MANO; refinement forgives a mean-pose start given 20 iterations, not the warm budgets. The
first run says what it does once in the log.
"""

from __future__ import annotations

import logging

import torch

from hand_mesh_ros.handmodel.convert import transfer_pose
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.topology import NUM_POSE

LOG = logging.getLogger(__name__)


class ArticulationInit:
    """theta of the regressor (B, 63) -> the (B, 45) pose of the fitting model of a side.

    regressor: the ``KeypointMeshRegressor`` (trained for ``config.hand_model``'s right hand);
    hand_models: ``choice.HandModels``; priors: {side: PosePrior} of those models.
    """

    def __init__(self, regressor, hand_models, priors: dict) -> None:
        self.priors = priors
        trained_for = regressor.config.hand_model
        self.transfer = hand_models.name != trained_for
        self.source_prior = None
        if self.transfer:
            source = load_hand_model(regressor.config.side, device=hand_models.right.device)
            self.source_prior = PosePrior.from_model(source).to(source.device)
            LOG.warning(
                "hand_model %s: no keypoint regressor is trained for MANO; using the open "
                "model's regressor, its articulation transferred to MANO through joint angles "
                "(handmodel/convert.py transfer_pose), then PnP and refinement with MANO "
                "(measured as good a start as the open model's own; nothing to train)",
                hand_models.choice.label,
            )

    def pose(self, theta: torch.Tensor, side: str) -> torch.Tensor:
        """(B, 45) articulation for the fitting model of ``side`` ("right" when mirrored)."""
        pose = theta[:, :NUM_POSE]
        if not self.transfer:
            return pose
        return transfer_pose(self.source_prior, self.priors[side], pose)
