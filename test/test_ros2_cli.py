"""The package as a ROS 2 user drives it, with the real command line (the launch / launch_ros /
ros2cli wheels from ../shared/wheels, installed by tools/install_shared_wheels.sh).

This package is built with colcon (the session's ``colcon_install``, shared with
test_colcon_build.py) and "sourced" through the environment, on a private ROS_DOMAIN_ID,
localhost only. Then, each step checking values, not just exit codes:

1. ``ros2 launch hand_mesh_ros estimator.launch.py`` (default arguments, the topics remapped,
   ``device:=cpu``) in its own process group, as a terminal starts it; ``ros2 lifecycle get``
   until ``active``;
2. ``ros2 lifecycle set`` deactivate / activate, each followed by ``get``;
3. ``ros2 param get / set / describe``: the parameter file's default, a live change read back,
   a parameter that is read at configure refused with the reason, the range of ``max_hands``;
4. a real image from ../shared/data/hands streamed by ``hand_mesh_ros.ros.camera_stream`` (a
   camera driver stand-in in its own process); ``ros2 topic echo --once`` receives a hand on
   /hand/joints near the annotated keypoints and, where the node publishes /tf, its frames;
5. SIGINT to the process group (Ctrl-C): exit status 0 within seconds, no process left;
6. ``rviz:=true`` without rviz2: a warning, the estimator active, SIGINT stops everything.

The ``ros2`` commands use a ros2 daemon of the test's domain, as a user's do (without it,
each command discovers the graph for ``--spin-time`` and on two busy cores often misses the
node); the test starts it and stops it, and checks that nothing of the domain survives.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from colcon_install import sourced_env
from helpers import REPO_ROOT, SHARED_DATA

from hand_mesh_ros.imageio import read_image
from hand_mesh_ros.pipeline.config import EstimatorConfig
from hand_mesh_ros.ros.config import NODE_NAME
from hand_mesh_ros.settings import settings_of

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
ROS2 = shutil.which("ros2", path=os.path.dirname(sys.executable))
if ROS2 is None or importlib.util.find_spec("launch_ros") is None:
    pytest.skip(
        "the ros2 CLI and launch_ros are not installed: tools/install_shared_wheels.sh installs "
        "them from ../shared/wheels (beside the checkout) when that folder exists",
        allow_module_level=True,
    )

psutil = pytest.importorskip("psutil", reason="psutil (a ros2cli dependency) not installed")

NODE = f"/{NODE_NAME}"
HANDS = SHARED_DATA / "hands"
DEFAULTS = yaml.safe_load((REPO_ROOT / "config" / "estimator.yaml").read_text())["/**"][
    "ros__parameters"
]
IMAGE_TOPIC, CAMERA_INFO_TOPIC = "/cli/image_raw", "/cli/camera_info"
LAUNCH_ARGUMENTS = (
    f"image_topic:={IMAGE_TOPIC}",
    f"camera_info_topic:={CAMERA_INFO_TOPIC}",
    "device:=cpu",
)
ACTIVE_TIMEOUT_S = 90  # process start and model loading, on two busy cores
STOP_TIMEOUT_S = 10  # SIGINT to exit
CLI_TIMEOUT_S = 60  # one ros2 command
NOT_FOUND_TRIES = 4  # a command that did not find the node (not discovered yet) runs again
HAND_TIMEOUT_S = 60  # first hand on /hand/joints once the camera streams
NO_RVIZ_WARNING = "rviz2 is not installed: starting without RViz"


def _domain(offset: int) -> int:
    """A private ROS_DOMAIN_ID per test run (0..101 is the range every platform allows)."""
    return 20 + (os.getpid() + offset) % 80


class Launch:
    """``ros2 launch hand_mesh_ros estimator.launch.py *arguments`` in its own session and
    process group (as a terminal starts it); its output goes to ``log``."""

    def __init__(self, env: dict[str, str], arguments: tuple[str, ...], log: Path):
        self.env, self.log = env, log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [ROS2, "launch", "hand_mesh_ros", "estimator.launch.py", *arguments],
                env=dict(env, PYTHONUNBUFFERED="1"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=log.parent,
            )

    def output(self) -> str:
        return self.log.read_text()

    def processes(self) -> list[psutil.Process]:
        """The launch and everything it started, while it runs."""
        launch = psutil.Process(self.process.pid)
        return [launch, *launch.children(recursive=True)]

    def wait_active(self) -> float:
        """Seconds until ``ros2 lifecycle get`` says active (polled); fails with the log when
        the launch exits or the node does not get there in time."""
        start = time.monotonic()
        while time.monotonic() - start < ACTIVE_TIMEOUT_S:
            assert self.process.poll() is None, f"launch exited:\n{self.output()[-3000:]}"
            got = ros2(self.env, "lifecycle", "get", NODE, tries=1)
            if got.returncode == 0 and got.stdout.strip() == "active [3]":
                return time.monotonic() - start
            time.sleep(0.5)
        raise AssertionError(f"not active in {ACTIVE_TIMEOUT_S} s:\n{self.output()[-3000:]}")

    def interrupt(self) -> tuple[int, float, list[str]]:
        """Ctrl-C: SIGINT to the process group. Returns the exit status, the seconds it took
        and what is still running of the launch's processes or process group afterwards."""
        started = self.processes()
        pgid = os.getpgid(self.process.pid)
        start = time.monotonic()
        os.killpg(pgid, signal.SIGINT)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - start
        time.sleep(0.5)  # children that outlive the launch would show by now
        survivors = {p.pid: p for p in started if _alive(p)}
        for p in psutil.process_iter():
            try:
                if os.getpgid(p.pid) == pgid and _alive(p):
                    survivors[p.pid] = p
            except (ProcessLookupError, psutil.Error):
                continue
        return status, took, [_describe(p) for p in survivors.values()]

    def kill(self) -> None:
        """Whatever is left (after a failed test): SIGKILL to the process group."""
        try:
            os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid}: {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return str(process.pid)


def ros2(env: dict[str, str], *arguments: str, tries: int = NOT_FOUND_TRIES):
    """One ``ros2`` command, run again (up to ``tries`` times) while it says the node is not
    found: the daemon may not have discovered it yet."""
    for _ in range(tries):
        done = subprocess.run(
            [ROS2, *arguments], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
        if "Node not found" not in done.stdout + done.stderr:
            break
        time.sleep(0.5)
    return done


def ros2_together(env: dict[str, str], *commands: tuple[str, ...]) -> list[tuple[int, str]]:
    """Independent ``ros2`` commands at the same time: (exit status, stdout + stderr) of each;
    one that did not find the node runs again."""
    running = [
        subprocess.Popen(
            [ROS2, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in commands
    ]
    outputs = [p.communicate(timeout=CLI_TIMEOUT_S)[0] for p in running]
    results = []
    for command, process, out in zip(commands, running, outputs, strict=True):
        if "Node not found" in out:
            again = ros2(env, *command)
            results.append((again.returncode, again.stdout + again.stderr))
        else:
            results.append((process.returncode, out))
    return results


@contextlib.contextmanager
def ros2_daemon(env: dict[str, str]):
    """The ros2 daemon of ``env``'s ROS_DOMAIN_ID for the duration; stopped at the end, and
    nothing of that domain may survive it."""
    started = ros2(env, "daemon", "start")
    assert started.returncode == 0, started
    try:
        yield
    finally:
        stopped = ros2(env, "daemon", "stop")
        assert stopped.returncode == 0, stopped
        domain = int(env["ROS_DOMAIN_ID"])
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _daemons_of(domain) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _daemons_of(domain)


def _daemons_of(domain: int) -> list[str]:
    """What runs of ``domain``'s ros2 daemon (nothing should, once it is stopped)."""
    left = []
    for p in psutil.process_iter():
        try:
            cmdline = p.cmdline()
        except psutil.Error:
            continue
        if "--ros-domain-id" in cmdline and str(domain) in cmdline and _alive(p):
            left.append(_describe(p))
    return left


@pytest.fixture(scope="module")
def launched(colcon_install, tmp_path_factory):
    """The estimator as ``ros2 launch`` starts it with the remaps and device:=cpu; the
    environment of the ``ros2`` commands; killed at the end whatever happened."""
    env = sourced_env(colcon_install, domain=_domain(0))
    with ros2_daemon(env):
        launch = Launch(env, LAUNCH_ARGUMENTS, tmp_path_factory.mktemp("launch") / "launch.log")
        yield launch
        if launch.process.poll() is None:
            launch.kill()


def test_ros2_launch_brings_the_node_to_active(launched):
    seconds = launched.wait_active()
    assert seconds < ACTIVE_TIMEOUT_S
    log = launched.output()
    assert "configured on cpu" in log  # device:=cpu reached the node, over params_file
    assert f"active: listening on {IMAGE_TOPIC}" in log  # the remap reached the node
    assert "[ERROR]" not in log


def test_ros2_lifecycle_set_and_get(launched):
    env = launched.env
    for transition, state in (("deactivate", "inactive [2]"), ("activate", "active [3]")):
        done = ros2(env, "lifecycle", "set", NODE, transition)
        assert (done.returncode, done.stdout.strip()) == (0, "Transitioning successful"), done
        got = ros2(env, "lifecycle", "get", NODE)
        assert (got.returncode, got.stdout.strip()) == (0, state), got


def test_ros2_param_get_set_and_describe(launched):
    env = launched.env
    (warm, device, described) = ros2_together(
        env,
        ("param", "get", NODE, "warm_iterations"),
        ("param", "get", NODE, "device"),
        ("param", "describe", NODE, "max_hands"),
    )
    assert warm == (0, f"Integer value is: {DEFAULTS['warm_iterations']}\n")  # the file's
    assert device == (0, "String value is: cpu\n")  # the launch argument's, over the file's
    _, spec = settings_of(EstimatorConfig)["max_hands"]
    assert described[0] == 0
    assert "Type: integer" in described[1]
    assert f"Min value: {spec.low}" in described[1] and f"Max value: {spec.high}" in described[1]
    # a live parameter: changed and read back
    changed = ros2(env, "param", "set", NODE, "warm_iterations", "7")
    assert changed.stdout.strip() == "Set parameter successful", changed
    read_back = ros2(env, "param", "get", NODE, "warm_iterations")
    assert read_back.stdout == "Integer value is: 7\n", read_back
    # one read at configure: refused with the reason, the value unchanged
    refused = ros2(env, "param", "set", NODE, "device", "cuda")
    assert not refused.stdout, refused  # (the exit status is 0 all the same)
    assert refused.stderr.startswith("Setting parameter failed:"), refused
    assert "device is read at configure" in refused.stderr
    assert ros2(env, "param", "get", NODE, "device").stdout == "String value is: cpu\n"


def _topics(env: dict[str, str]) -> dict[str, str]:
    """``ros2 topic list -t``: topic -> message type (looked at again while the node's outputs
    are not discovered yet)."""
    for _ in range(NOT_FOUND_TRIES):
        listed = ros2(env, "topic", "list", "-t")
        topics = dict(line.rstrip("]").split(" [") for line in listed.stdout.splitlines())
        if "/hand/joints" in topics:
            break
    return topics


def _echo_once(env: dict[str, str], topic: str, message_type: str, condition: str):
    """``ros2 topic echo --once`` of the first message on ``topic`` for which ``condition``
    (a Python expression of the message ``m``) holds. The type is given: the echo subscribes
    even before it has discovered the publisher."""
    return subprocess.Popen(
        [ROS2, "topic", "echo", "--once", "--full-length", "--no-lost-messages",
         "--timeout", str(HAND_TIMEOUT_S), "--filter", condition, topic, message_type],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_message(echo: subprocess.Popen) -> dict:
    out, err = echo.communicate(timeout=HAND_TIMEOUT_S + 30)
    message = yaml.safe_load(out.split("\n---")[0]) if out.strip() else None
    assert isinstance(message, dict), f"echoed {out[:2000]!r}, {err[-2000:]!r}"
    return message


def _stream_until(echo: subprocess.Popen, env: dict[str, str], cwd: Path) -> dict:
    """Stream the first annotated image of ../shared/data/hands with camera_stream (6 s at
    10 Hz, at the image's own size) until ``echo`` has its message (at most three times: the
    echo may not have been subscribed yet); returns camera_stream's summary and the image's
    annotation."""
    annotation = json.loads((HANDS / "annotations.jsonl").read_text().splitlines()[0])
    image = HANDS / annotation["image"]
    height, width = read_image(image).shape[:2]
    for _ in range(3):
        camera = subprocess.run(
            [sys.executable, "-m", "hand_mesh_ros.ros.camera_stream", "--image", str(image),
             "--size", f"{width}x{height}", "--frames", "60", "--rate", "10",
             "--image-topic", IMAGE_TOPIC, "--camera-info-topic", CAMERA_INFO_TOPIC],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,  # python -m puts the working folder first: not the source tree
        )
        assert camera.returncode == 0, camera.stderr[-3000:]
        if echo.poll() is not None:
            break
    return {"summary": json.loads(camera.stdout), "annotation": annotation}


def _check_hand_frames(tf: dict, joints: dict) -> None:
    """/tf of the hands: per hand a wrist frame and its _palm, children of the image's frame,
    unit quaternions; in the frame of ``joints``, the wrist frame at the wrist keypoint."""
    transforms = {t["child_frame_id"]: t for t in tf["transforms"]}
    wrists = [name for name in transforms if not name.endswith("_palm")]
    assert wrists and all(f"{name}_palm" in transforms for name in wrists), list(transforms)
    for name, t in transforms.items():
        assert name.startswith(("hand_left_", "hand_right_")), name
        assert t["header"]["frame_id"] == "camera_optical_frame"
        q = t["transform"]["rotation"]
        assert abs(np.linalg.norm([q["x"], q["y"], q["z"], q["w"]]) - 1.0) < 1e-6
    wrist = transforms[wrists[0]]
    if wrist["header"]["stamp"] == joints["header"]["stamp"] and len(joints["hands"]) == 1:
        hand = joints["hands"][0]
        origin = wrist["transform"]["translation"]
        wrist_xyz = np.array(hand["joints_3d"][:3])
        assert np.allclose([origin["x"], origin["y"], origin["z"]], wrist_xyz, atol=1e-6)
        assert wrists[0] == f"hand_{hand['side']}_{hand['track_id']}"


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_an_image_gives_a_hand_on_joints_and_tf(launched, tmp_path):
    env = launched.env
    topics = _topics(env)
    assert topics["/hand/joints"] == "hand_mesh_ros/msg/HandJointsArray", topics
    assert topics[IMAGE_TOPIC] == "sensor_msgs/msg/Image"  # the node's subscription, remapped
    publishes_tf = "/tf" in topics
    echoes = [_echo_once(env, "/hand/joints", topics["/hand/joints"], "len(m.hands) > 0")]
    if publishes_tf:
        assert topics["/tf"] == "tf2_msgs/msg/TFMessage"
        is_hand = "any(t.child_frame_id.startswith('hand_') for t in m.transforms)"
        echoes.append(_echo_once(env, "/tf", topics["/tf"], is_hand))
    try:
        streamed = _stream_until(echoes[0], env, tmp_path)
        joints = _first_message(echoes[0])
        tf = _first_message(echoes[1]) if publishes_tf else None
    finally:
        for echo in echoes:
            echo.kill()
            echo.communicate()
    assert set(joints) == {"header", "hands"}, joints
    assert joints["header"]["frame_id"] == "camera_optical_frame"  # camera_stream's frame
    first_sec = streamed["summary"]["first_stamp_ns"] // 10**9
    assert joints["header"]["stamp"]["sec"] >= first_sec  # a stamp of the stream's images
    hand = joints["hands"][0]
    assert hand["side"] in ("left", "right") and 0.0 < hand["score"] <= 1.0
    xyz = np.array(hand["joints_3d"]).reshape(21, 3)
    uv = np.array(hand["joints_2d"]).reshape(21, 2)
    annotation = streamed["annotation"]
    pixel_error = np.linalg.norm(uv - np.array(annotation["kp2d"])[:, :2], axis=1).mean()
    assert pixel_error < 15.0, pixel_error  # pixels, the annotated keypoints of this image
    truth = np.array(annotation["kp3d"]) / 1000.0
    assert abs(xyz[0, 2] - truth[0, 2]) < 0.25  # metres (camera_stream assumes a 60 deg fov)
    if not publishes_tf:
        pytest.skip("the node does not publish /tf (not in `ros2 topic list`): /tf unchecked")
    _check_hand_frames(tf, joints)


def test_sigint_stops_the_launch_cleanly(launched):
    status, took, survivors = launched.interrupt()
    assert status == 0, launched.output()[-3000:]
    assert took < STOP_TIMEOUT_S
    assert not survivors, survivors
    assert "process has finished cleanly" in launched.output()


def _rviz2_installed(env: dict[str, str]) -> bool:
    index = Path("share", "ament_index", "resource_index", "packages", "rviz2")
    return any((Path(p) / index).is_file() for p in env["AMENT_PREFIX_PATH"].split(":") if p)


def test_rviz_true_without_rviz2_keeps_the_estimator_and_stops_on_sigint(
    colcon_install, tmp_path, tmp_path_factory
):
    """The second launch also takes image_transport:=compressed (the launch argument reaches
    the node's parameter, and the subscription moves to <image_topic>/compressed) and
    hand_model:=<a MANO-structured MANO_RIGHT.pkl written here> (configured with it)."""
    from synthetic_mano import write_synthetic_mano_pair

    right, _ = write_synthetic_mano_pair(tmp_path_factory.mktemp("mano"))  # no "rviz2" in it
    domain = _domain(40)
    env = sourced_env(colcon_install, domain=domain)
    if _rviz2_installed(env):
        pytest.skip("rviz2 is installed here: rviz:=true starts it")
    with ros2_daemon(env):
        arguments = (
            *LAUNCH_ARGUMENTS, "rviz:=true", "image_transport:=compressed", f"hand_model:={right}"
        )
        launch = Launch(env, arguments, tmp_path / "launch.log")
        try:
            launch.wait_active()
            log = launch.output()
            assert f"[WARNING] [launch]: {NO_RVIZ_WARNING}" in log
            assert "rviz2" not in log.replace(NO_RVIZ_WARNING, "")  # no failure, no attempt
            assert f"active: listening on {IMAGE_TOPIC}/compressed" in log
            transport = ros2(env, "param", "get", NODE, "image_transport")
            assert transport.stdout == "String value is: compressed\n", transport
            assert f"(hand model mano: {right})" in log  # configured with the user's MANO
            status, took, survivors = launch.interrupt()
        finally:
            if launch.process.poll() is None:
                launch.kill()
    assert status == 0, launch.output()[-3000:]
    assert took < STOP_TIMEOUT_S and not survivors, survivors
