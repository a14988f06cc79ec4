"""The 21 keypoints of a hand model without skinning its whole mesh.

Fitting and the keypoint regressor only need the keypoints: 16 joints from the joint regressor
and 5 fingertip vertices. Evaluating LBS for those alone is ~40x cheaper than for every vertex,
which matters most for the forward-mode Jacobians of test-time refinement. The depth term of
refinement adds the few hundred vertices under its observed surface points (``vertex_ids``),
skinned with the same joint transforms.
"""

from __future__ import annotations

import torch
from torch import nn

from hand_mesh_ros.handmodel.lbs import batch_rigid_transform, pose_feature, skin_vertices
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.topology import NUM_POSE


class KeypointSkeleton(nn.Module):
    """The 21 keypoints of a ``HandModel`` (no global orientation or translation), computed
    from its joints and fingertip vertices only. Buffers are copies of the model's arrays;
    ``forward(pose (B, 45), shape (B, 10)) -> (B, 21, 3)`` metres, model frame, equal to
    ``model(pose=pose, shape=shape).keypoints``. Needs a non-PCA model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.use_pca:
            raise ValueError("KeypointSkeleton needs a model with use_pca=False")
        self.model_name, self.side = model.name, model.side
        reg = model.j_regressor
        tips = model.fingertip_vertex_ids.long()
        self.register_buffer("joint_template", reg @ model.v_template, persistent=False)
        self.register_buffer(
            "joint_shapedirs", torch.einsum("jv,vcs->jcs", reg, model.shapedirs), persistent=False
        )
        self.register_buffer("tip_template", model.v_template[tips].clone(), persistent=False)
        self.register_buffer("tip_shapedirs", model.shapedirs[tips].clone(), persistent=False)
        posedirs = None if model.posedirs is None else model.posedirs[tips].clone()
        self.register_buffer("tip_posedirs", posedirs, persistent=False)
        self.register_buffer("tip_weights", model.skinning_weights[tips].clone(), persistent=False)
        self.register_buffer(
            "hands_mean",
            model.full_finger_pose(model.v_template.new_zeros(1, NUM_POSE))[0].clone(),
            persistent=False,
        )
        # the whole mesh, for the surface points of the depth term (``vertex_ids``)
        self.register_buffer("v_template", model.v_template.clone(), persistent=False)
        self.register_buffer("shapedirs", model.shapedirs.clone(), persistent=False)
        all_posedirs = None if model.posedirs is None else model.posedirs.clone()
        self.register_buffer("posedirs", all_posedirs, persistent=False)
        self.register_buffer("weights", model.skinning_weights.clone(), persistent=False)
        self._parents = model._parents
        self._joint_ids = list(model._joint_ids)
        self.register_buffer("order", model._order.clone(), persistent=False)

    def forward(self, pose: torch.Tensor, shape: torch.Tensor, vertex_ids=None):
        """(B, 21, 3) keypoints; with vertex_ids (B, N) long -- or (G, N), one row per G
        consecutive groups of hands (``_skin_vertices``) -- also (B, N, 3) those vertices
        (model frame, equal to ``model(pose=pose, shape=shape).vertices`` gathered)."""
        batch = pose.shape[0]
        dtype = self.joint_template.dtype
        pose, shape = pose.to(dtype) + self.hands_mean, shape.to(dtype)
        full_pose = torch.cat((pose.new_zeros(batch, 3), pose), dim=1)
        rot_mats = axis_angle_to_matrix(full_pose.view(batch, -1, 3))
        rest_joints = self.joint_template + torch.einsum("bs,jcs->bjc", shape, self.joint_shapedirs)
        tips = self.tip_template + torch.einsum("bs,vcs->bvc", shape, self.tip_shapedirs)
        if self.tip_posedirs is not None:
            tips = tips + torch.einsum("bp,vcp->bvc", pose_feature(rot_mats), self.tip_posedirs)
        joints, rel = batch_rigid_transform(rot_mats, rest_joints, self._parents)
        tips = skin_vertices(tips, self.tip_weights, rel)
        stacked = torch.cat((joints[:, self._joint_ids], tips), dim=1)
        keypoints = stacked[:, self.order]
        if vertex_ids is None:
            return keypoints
        return keypoints, self._skin_vertices(vertex_ids, shape, rot_mats, rel)

    def _skin_vertices(self, ids, shape, rot_mats, rel) -> torch.Tensor:
        """(G, N) vertex ids -> (B, N, 3) posed vertices (LBS of those vertices only); G
        divides B and row g of ids belongs to the B / G consecutive hands g * B / G ... (a
        hand's central-difference probes share its vertices: each is gathered once, 0.68 ->
        0.23 ms for 64 vertices of 103 probes on one CPU thread)."""
        groups, n = ids.shape
        batch = shape.shape[0]
        if batch % groups:
            raise ValueError(f"vertex_ids has {groups} rows, which do not divide {batch} hands")
        k = batch // groups
        rest = self.v_template[ids][:, None] + torch.einsum(
            "gks,gvcs->gkvc", shape.view(groups, k, -1), self.shapedirs[ids]
        )
        if self.posedirs is not None:
            rest = rest + torch.einsum(
                "gkp,gvcp->gkvc", pose_feature(rot_mats).view(groups, k, -1), self.posedirs[ids]
            )
        joints = rel.shape[1]
        top = rel.reshape(groups, k, joints, 16)[..., :12]  # rows 0-2 of each 4x4 transform
        blended = (self.weights[ids][:, None] @ top).view(groups, k, n, 3, 4)
        posed = (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]
        return posed.reshape(batch, n, 3)
