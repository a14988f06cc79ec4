"""The node with the user's MANO over real DDS (issue 12): ``hand_model`` set to a
MANO-structured pair written here, a camera-side node publishes RHD images, and the published
HandMano names MANO and holds parameters that, fed to that side's MANO file, reproduce the
published mesh (hand/mesh_indexed). A missing or malformed MANO file fails configure with a
message naming the file, and the node stays unconfigured."""

import json
import os
import time

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA
from synthetic_mano import write_synthetic_mano_pair

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import running_node  # noqa: E402

from hand_mesh_ros.handmodel.model import load_hand_model  # noqa: E402
from hand_mesh_ros.imageio import read_image  # noqa: E402
from hand_mesh_ros.ros.client import NodeRunner  # noqa: E402
from hand_mesh_ros.ros.node import HandMeshNode  # noqa: E402

HANDS = SHARED_DATA / "hands"
FRAME_ID = "mano_camera_optical_frame"
TIMEOUT_S = 60.0
GAP_NS = 5_000_000_000  # unrelated images: no warm start between them


@pytest.fixture(scope="module")
def mano_pair(tmp_path_factory):
    return write_synthetic_mano_pair(tmp_path_factory.mktemp("mano_node"))


@pytest.fixture(scope="module")
def ros(mano_pair):
    """rclpy on its own DDS domain (localhost), the MANO node and a camera client spinning."""
    parameters = {"device": "cpu", "hand_model": str(mano_pair[0]), "refine_iterations": 20}
    with running_node(
        20 + os.getpid() % 60, "mano_cam", parameters, node_name="hand_mesh_mano",
        client_name="mano_camera",
    ) as (node, client):
        yield node, client


def _send(client, rgb, K, stamp):
    for attempt in range(3):  # best-effort images: resend on a loss
        stamp += attempt * GAP_NS
        client.publish_frame(rgb, K, stamp, FRAME_ID)
        try:
            return client.wait_for(stamp, TIMEOUT_S / 3)
        except TimeoutError:
            continue
    raise TimeoutError("no outputs for three attempts")


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_published_mano_parameters_reproduce_the_published_mesh(ros, mano_pair):
    node, client = ros
    assert node.config.hand_model == str(mano_pair[0])
    models = {
        side: load_hand_model(side, path=path, flat_hand_mean=True, dtype=torch.float64)
        for side, path in zip(("right", "left"), mano_pair, strict=True)
    }
    rows = [json.loads(x) for x in (HANDS / "annotations.jsonl").read_text().splitlines()]
    sides = set()
    for k, row in enumerate(r for r in rows if r["dataset"] == "RHD"):
        got = _send(client, read_image(HANDS / row["image"]), np.array(row["K"]),
                    1_800_000_000_000_000_000 + 10 * k * GAP_NS)
        mano, meshes = got.messages["mano"].hands, got.messages["mesh_indexed"].hands
        assert len(mano) == len(meshes) >= 1
        for hand, mesh in zip(mano, meshes, strict=True):
            assert hand.model == mesh.model == "mano" and hand.side == mesh.side
            assert hand.track_id == mesh.track_id
            sides.add(hand.side)
            model = models[hand.side]
            params = {
                name: torch.tensor(np.asarray(getattr(hand, name), np.float64))[None]
                for name in ("pose", "shape", "global_orient", "transl")
            }
            with torch.no_grad():
                vertices = model(**params).vertices[0].numpy()
            published = np.asarray(mesh.vertices, np.float64).reshape(-1, 3)
            assert published.shape == (778, 3)
            assert np.abs(vertices - published).max() < 1e-5  # float32 messages
            faces = np.asarray(mesh.triangles, np.int64).reshape(-1, 3)
            assert np.array_equal(faces, model.faces.numpy())  # the side's own file
    assert sides == {"left", "right"}


class _Logger:
    """Records the node's log calls (the configure failure is logged as an error)."""

    def __init__(self, logger):
        self.logger, self.errors = logger, []

    def error(self, message, *args, **kwargs):
        self.errors.append(message)
        return self.logger.error(message, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.logger, name)


@pytest.mark.parametrize("problem", ["missing", "malformed"])
def test_a_missing_or_malformed_mano_file_fails_configure_naming_it(
    ros, tmp_path, problem
):
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    _, client = ros
    write_synthetic_mano_pair(tmp_path)
    left = tmp_path / "MANO_LEFT.pkl"
    if problem == "missing":
        left.unlink()
    else:
        left.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.")  # {'a': 1}
    name = f"hand_mesh_bad_mano_{problem}"
    broken = HandMeshNode(
        name,
        parameter_overrides=[
            Parameter("device", value="cpu"),
            Parameter("auto_start", value=False),
            Parameter("hand_model", value=str(tmp_path / "MANO_RIGHT.pkl")),
        ],
    )
    try:
        logger = _Logger(broken.get_logger())
        broken.get_logger = lambda: logger
        assert broken.trigger_configure() == TransitionCallbackReturn.FAILURE
        (message,) = logger.errors
        assert str(left) in message
        assert ("missing" if problem == "missing" else "not a MANO pickle") in message
        service = client.create_client(GetState, f"/{name}/get_state")
        runner = NodeRunner(broken)
        try:
            assert service.wait_for_service(timeout_sec=10.0)
            future = service.call_async(GetState.Request())
            deadline = time.monotonic() + 10.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert future.result().current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        finally:
            runner.stop()
    finally:
        broken.destroy_node()
