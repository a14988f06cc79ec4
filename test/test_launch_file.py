"""launch/estimator.launch.py and rviz/hand_mesh.rviz agree with the package and the node.

``launch`` / ``launch_ros`` are not on PyPI, so the launch file is read with ``ast``: its
``generate_launch_description`` is evaluated symbolically (calls become ``Call`` records) and
checked against CMakeLists.txt (package, installed executable and folders), the node's own
names (``hand_mesh_ros.ros.config``) and config/estimator.yaml. Where launch_ros is importable
(a ROS install, or the shared wheels: tools/install_shared_wheels.sh), the real objects are
checked as well, against this package built with colcon (the session's ``colcon_install``).
test/test_ros2_cli.py runs the file with the real ``ros2 launch``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT

from hand_mesh_ros.devices import DEVICES
from hand_mesh_ros.ros.config import (
    CAMERA_INFO_TOPIC,
    DEFAULT_CAMERA_INFO_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    IMAGE_TOPIC,
    IMAGE_TRANSPORTS,
    NODE_NAME,
    NodeConfig,
)

LAUNCH_FILE = REPO_ROOT / "launch" / "estimator.launch.py"
RVIZ_FILE = REPO_ROOT / "rviz" / "hand_mesh.rviz"
PARAMS_FILE = REPO_ROOT / "config" / "estimator.yaml"
ARGUMENTS = (
    "params_file",
    "image_topic",
    "camera_info_topic",
    "device",
    "hand_model",
    "image_transport",
    "depth_topic",
    "rviz",
    "namespace",
)
# node parameters the launch arguments of the same name override (over params_file)
OVERRIDES = ("device", "hand_model", "image_transport", "depth_topic")
# the one helper beside generate_launch_description: the OpaqueFunction that starts RViz only
# where its package is installed (a Node of a missing package fails the launch and orphans the
# estimator, ros2/launch#747)
RVIZ_HELPER = "rviz_if_installed"
LOGIC = (ast.If, ast.For, ast.While, ast.Lambda, ast.IfExp, ast.Try, ast.With)


@dataclass(frozen=True)
class Call:
    """A call in the launch file: dotted function name, evaluated arguments."""

    func: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Name:
    """A name the launch file does not define (an import, e.g. ``os.path.join``)."""

    dotted: str


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise AssertionError(f"line {node.lineno}: unexpected callee {ast.dump(node)}")


def _evaluate(node: ast.expr, env: dict):
    """Literals, names, lists/tuples/dicts (with *unpacking) and calls; anything else is more
    Python logic than a launch file should have."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, Name(node.id))
    if isinstance(node, ast.Attribute):
        return Name(_dotted(node))
    if isinstance(node, (ast.List, ast.Tuple)):
        items = []
        for element in node.elts:
            if isinstance(element, ast.Starred):
                items.extend(_evaluate(element.value, env))
            else:
                items.append(_evaluate(element, env))
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {
            _evaluate(k, env): _evaluate(v, env)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.Call):
        args = tuple(_evaluate(a, env) for a in node.args)
        kwargs = {k.arg: _evaluate(k.value, env) for k in node.keywords}
        return Call(_dotted(node.func), args, kwargs)
    raise AssertionError(f"line {node.lineno}: unexpected expression {ast.dump(node)[:80]}")


def _walk(value):
    """Every Call inside an evaluated value (depth first, in order)."""
    if isinstance(value, Call):
        yield value
        for item in (*value.args, *value.kwargs.values()):
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(key)
            yield from _walk(item)


def _config(name: str) -> Call:
    return Call("LaunchConfiguration", (name,))


def _share_path(*parts: str) -> Call:
    share = Call("get_package_share_directory", ("hand_mesh_ros",))
    return Call("os.path.join", (share, *parts))


def _functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.fixture(scope="module")
def description() -> Call:
    """The LaunchDescription returned by generate_launch_description, evaluated."""
    functions = _functions()
    assert list(functions) == [RVIZ_HELPER, "generate_launch_description"]
    env: dict = {}
    for statement in functions["generate_launch_description"].body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            env[_dotted(statement.targets[0])] = _evaluate(statement.value, env)
            continue
        if isinstance(statement, ast.Return):
            result = _evaluate(statement.value, env)
            assert isinstance(result, Call) and result.func == "LaunchDescription"
            return result
        raise AssertionError(f"line {statement.lineno}: only assignments and one return")
    raise AssertionError("generate_launch_description returns nothing")


def _actions(description: Call) -> list:
    (actions,) = description.args
    return actions


def _declared(description: Call) -> dict[str, Call]:
    return {
        a.args[0]: a
        for a in _actions(description)
        if isinstance(a, Call) and a.func == "DeclareLaunchArgument"
    }


def _one(description: Call, func: str) -> Call:
    found = [a for a in _actions(description) if isinstance(a, Call) and a.func == func]
    assert len(found) == 1, f"expected one {func}, found {len(found)}"
    return found[0]


def _cmake() -> str:
    return (REPO_ROOT / "CMakeLists.txt").read_text()


def test_launch_file_is_plain_declarations():
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not called & {"eval", "exec", "compile", "__import__"}
    functions = _functions()
    generate = functions["generate_launch_description"]
    assert not [type(n).__name__ for n in ast.walk(generate) if isinstance(n, LOGIC)]
    # the RViz helper's one decision: is rviz2 in the ament index
    helper = functions[RVIZ_HELPER]
    decisions = [n for n in ast.walk(helper) if isinstance(n, LOGIC)]
    assert [type(n).__name__ for n in decisions] == ["If"]
    assert ast.unparse(decisions[0].test) == "has_resource('packages', 'rviz2')"
    assert "rviz2 is not installed: starting without RViz" in ast.unparse(helper)
    outside = [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
    assert not [type(n).__name__ for n in outside for m in ast.walk(n) if isinstance(m, LOGIC)]
    assert "camera_optical_frame" in ast.get_docstring(tree)  # users are told to set theirs


def test_every_argument_is_declared_described_and_used(description):
    declared = _declared(description)
    assert tuple(declared) == ARGUMENTS
    for name, action in declared.items():
        assert len(action.kwargs.get("description", "")) > 10, f"{name}: no description"
        assert "default_value" in action.kwargs, f"{name}: no default"
    others = [a for a in _actions(description) if a.func != "DeclareLaunchArgument"]
    used = {c.args[0] for c in _walk(others) if c.func == "LaunchConfiguration"}
    assert used == set(ARGUMENTS), f"declared but unused: {set(ARGUMENTS) - used}"


def _package_and_executable() -> tuple[str, str]:
    """The CMake project name and the executable it installs into lib/<package>."""
    project = re.search(r"^project\((\w+)", _cmake(), re.MULTILINE).group(1)
    installed = re.findall(
        r"install\(PROGRAMS\s+(\S+)\s+DESTINATION lib/\$\{PROJECT_NAME\}\)", _cmake()
    )
    assert installed == ["scripts/estimator_node"]
    return project, Path(installed[0]).name


def test_the_installed_executable_exists():
    project, executable = _package_and_executable()
    script = REPO_ROOT / "scripts" / executable
    assert script.is_file() and os.access(script, os.X_OK), f"{script} is not executable"
    assert f"<name>{project}</name>" in (REPO_ROOT / "package.xml").read_text()


def test_lifecycle_node_action(description):
    project, executable = _package_and_executable()
    node = _one(description, "LifecycleNode")
    assert node.kwargs["package"] == project == "hand_mesh_ros"
    assert node.kwargs["executable"] == executable == "estimator_node"
    assert node.kwargs["name"] == NODE_NAME == "hand_mesh_estimator"
    assert node.kwargs["namespace"] == _config("namespace")
    assert node.kwargs["parameters"] == [
        _config("params_file"),
        {name: _config(name) for name in OVERRIDES},
    ]
    assert node.kwargs["remappings"] == [
        (IMAGE_TOPIC, _config("image_topic")),
        (CAMERA_INFO_TOPIC, _config("camera_info_topic")),
    ]
    assert (IMAGE_TOPIC, CAMERA_INFO_TOPIC) == ("image", "camera_info")


def test_defaults_point_at_the_package_files_and_agree_with_the_node(description):
    declared = {
        name: action.kwargs["default_value"] for name, action in _declared(description).items()
    }
    assert declared["params_file"] == _share_path("config", "estimator.yaml")
    assert PARAMS_FILE.is_file()
    assert re.search(r"install\(DIRECTORY [^)]*\bconfig\b[^)]*DESTINATION share/", _cmake())
    assert declared["image_topic"] == DEFAULT_IMAGE_TOPIC == "/camera/image_raw"
    assert declared["camera_info_topic"] == DEFAULT_CAMERA_INFO_TOPIC == "/camera/camera_info"
    assert (declared["rviz"], declared["namespace"]) == ("false", "")
    parameters = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    for name in OVERRIDES:  # each override names a declared parameter, with the same default
        assert name in parameters, name
        assert declared[name] == parameters[name], name
    assert (declared["device"], declared["image_transport"]) == ("auto", "raw")
    assert declared["hand_model"] == "open"
    model_help = _declared(description)["hand_model"].kwargs["description"]
    assert "MANO_RIGHT.pkl" in model_help and "MANO_LEFT.pkl" in model_help
    device_help = _declared(description)["device"].kwargs["description"]
    assert all(choice in device_help for choice in DEVICES)
    transport_help = _declared(description)["image_transport"].kwargs["description"]
    assert all(choice in transport_help for choice in IMAGE_TRANSPORTS)
    assert "/compressed" in transport_help
    assert declared["depth_topic"] == "" == NodeConfig().depth_topic  # RGB only by default
    depth_help = _declared(description)["depth_topic"].kwargs["description"]
    assert all(word in depth_help for word in ("16UC1", "32FC1", "aligned", "RGB only"))


def test_rviz_node_is_conditional_and_loads_the_installed_config(description):
    assert not [a for a in _actions(description) if a.func == "Node"]  # never unconditional
    on_request = _one(description, "OpaqueFunction")
    assert on_request.kwargs["function"] == Name(RVIZ_HELPER)
    assert on_request.kwargs["condition"] == Call("IfCondition", (_config("rviz"),))
    (rviz,) = on_request.kwargs["args"]
    assert rviz.func == "Node" and "condition" not in rviz.kwargs
    assert (rviz.kwargs["package"], rviz.kwargs["executable"]) == ("rviz2", "rviz2")
    assert rviz.kwargs["arguments"] == ["-d", _share_path("rviz", "hand_mesh.rviz")]
    # after the estimator: whatever RViz does, the estimator has been started by then
    actions = [a.func for a in _actions(description)]
    assert actions.index("LifecycleNode") < actions.index("OpaqueFunction")
    assert re.search(r"install\(DIRECTORY [^)]*\brviz\b[^)]*DESTINATION share/", _cmake())
    assert RVIZ_FILE.is_file()


def _displays() -> dict[str, dict]:
    config = yaml.safe_load(RVIZ_FILE.read_text())
    assert {"Panels", "Visualization Manager", "Window Geometry"} <= set(config)
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical_frame"
    return {d["Name"]: d for d in manager["Displays"]}


def test_rviz_config_shows_the_image_and_the_mesh():
    displays = _displays()
    by_topic = {d["Topic"]["Value"]: d for d in displays.values() if "Topic" in d}
    mesh = by_topic["/hand/mesh"]
    assert mesh["Class"] == "rviz_default_plugins/MarkerArray" and mesh["Enabled"] is True
    assert mesh["Namespaces"] == {"hand_mesh": True}
    image = by_topic[DEFAULT_IMAGE_TOPIC]
    assert image["Class"] == "rviz_default_plugins/Image" and image["Enabled"] is True
    assert image["Topic"]["Reliability Policy"] == "Best Effort"  # cameras publish best effort
    overlay = by_topic["/hand/overlay"]
    assert overlay["Class"] == "rviz_default_plugins/Image" and overlay["Enabled"] is False
    from hand_mesh_ros.ros.topics import OUTPUTS  # the table the node's publishers come from

    published = {f"/{output.topic}": output for output in OUTPUTS.values()}
    for topic in set(by_topic) - {DEFAULT_IMAGE_TOPIC}:  # every display shows a node output
        assert topic in published, f"RViz shows {topic}, which the node does not publish"
        # of the type the display reads (standard rviz_default_plugins classes)
        display_class = by_topic[topic]["Class"]
        message = published[topic].message_type.__name__
        assert display_class == f"rviz_default_plugins/{message}", (topic, display_class)
    points = by_topic["/hand/points"]
    assert points["Class"] == "rviz_default_plugins/PointCloud2" and points["Enabled"] is False
    assert points["Channel Name"] == "hand"  # colored by track id


@pytest.fixture()
def launch_module(request, monkeypatch):
    """launch/estimator.launch.py imported with the real launch / launch_ros, and
    AMENT_PREFIX_PATH naming this package built with colcon (in front of the venv)."""
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip(
            "launch_ros is not installed: a ROS 2 install, or tools/install_shared_wheels.sh "
            "with ../shared/wheels beside the checkout"
        )
    from colcon_install import ament_prefix_path

    install = request.getfixturevalue("colcon_install")
    monkeypatch.setenv("AMENT_PREFIX_PATH", ament_prefix_path(install))
    spec = importlib.util.spec_from_file_location("estimator_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_launch_objects(launch_module, colcon_install):
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import LifecycleNode

    share = colcon_install / "share" / "hand_mesh_ros"
    entities = launch_module.generate_launch_description().entities
    arguments = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
    assert tuple(a.name for a in arguments) == ARGUMENTS
    assert all(len(a.description) > 10 for a in arguments)
    params_default = arguments[0].default_value[0].text
    assert params_default == str(share / "config" / "estimator.yaml")
    assert Path(params_default).is_file()
    (node,) = [e for e in entities if isinstance(e, LifecycleNode)]
    assert (node.node_package, node.node_executable) == ("hand_mesh_ros", "estimator_node")
    (on_request,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    assert on_request.condition is not None
    assert entities.index(node) < entities.index(on_request)


class _Warnings:
    def __init__(self):
        self.messages: list[str] = []

    def warning(self, message: str) -> None:
        self.messages.append(message)


def test_rviz_starts_only_where_its_package_is_installed(
    launch_module, colcon_install, monkeypatch, tmp_path
):
    from launch_ros.actions import Node

    warnings = _Warnings()
    monkeypatch.setattr(launch_module, "get_logger", lambda name: warnings)
    rviz = Node(package="rviz2", executable="rviz2")
    # this install and the venv: no rviz2, so no Node (it would fail the launch) and a warning
    assert launch_module.rviz_if_installed(None, rviz) == []
    assert warnings.messages == ["rviz2 is not installed: starting without RViz"]
    # a prefix whose ament index lists rviz2: the Node is started
    marker = tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "rviz2"
    marker.parent.mkdir(parents=True)
    marker.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path}:{os.environ['AMENT_PREFIX_PATH']}")
    assert launch_module.rviz_if_installed(None, rviz) == [rviz]
    assert len(warnings.messages) == 1
