"""The node's ROS parameters, declared from the config tables and read once, validated.

Every parameter is a field of ``EstimatorConfig``, ``TrackerConfig`` or ``NodeConfig``; its
default, range and description come from that field's ``setting`` (``hand_mesh_ros.settings``),
whose defaults equal ``config/estimator.yaml`` (test/test_config.py), so the node, the launch
file's parameter file and the library cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig
from hand_mesh_ros.ros.config import NodeConfig
from hand_mesh_ros.settings import Setting, settings_of

CONFIG_CLASSES = (EstimatorConfig, TrackerConfig, NodeConfig)


def parameter_table() -> dict[str, tuple[object, Setting]]:
    """name -> (default, Setting) of every node parameter."""
    table: dict[str, tuple[object, Setting]] = {}
    for cls in CONFIG_CLASSES:
        table.update(settings_of(cls))
    return table


def descriptor(name: str, default, spec: Setting) -> ParameterDescriptor:
    """The ROS descriptor of one parameter: description, choices in the text, numeric range."""
    text = spec.description
    if not spec.live:
        text += " (read at configure)"
    result = ParameterDescriptor(name=name, description=text)
    if spec.low is not None and isinstance(default, int):
        result.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)
        ]
    elif spec.low is not None:
        result.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return result


def declare_parameters(node) -> None:
    """Declare every parameter on ``node`` with its description, range and default. Values from
    a parameter file or the command line outside a range are refused by rclpy at start."""
    for name, (default, spec) in parameter_table().items():
        node.declare_parameter(name, default, descriptor(name, default, spec))


def read_parameters(node) -> tuple[EstimatorConfig, TrackerConfig, NodeConfig]:
    """The declared values as validated configs; ValueError names the bad parameter."""
    values = {name: node.get_parameter(name).value for name in parameter_table()}
    return tuple(
        cls(**{name: values[name] for name in settings_of(cls)}) for cls in CONFIG_CLASSES
    )


def changed_configs(configs: tuple, changes: dict[str, object]) -> tuple:
    """``configs`` (one per ``CONFIG_CLASSES``) with ``changes`` applied while the node runs.
    ValueError with the reason when a change is refused: an unknown name, a setting that is
    read at configure (not ``live``), or a value its table refuses."""
    table = parameter_table()
    for name in changes:
        if name not in table:
            raise ValueError(f"{name} is not a parameter of this node")
        if not table[name][1].live:
            raise ValueError(
                f"{name} is read at configure: deactivate, clean up and configure the node "
                "again to change it"
            )
    return tuple(
        replace(config, **{k: v for k, v in changes.items() if k in settings_of(config)})
        for config in configs
    )
