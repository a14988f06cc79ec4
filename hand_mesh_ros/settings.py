"""One table per config: each field's default, range or choices and description written once.

A config is a frozen dataclass whose fields are made with ``setting(...)``; its
``__post_init__`` calls ``check_settings(self)``, which validates every field from that table,
and the ROS node turns the same table into parameter descriptors (``ros/params.py``). Plain
Python: no torch, no ROS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SETTING_KEY = "setting"  # the dataclass field metadata key holding a ``Setting``


@dataclass(frozen=True)
class Setting:
    """What one config field accepts. ``low``/``high``: inclusive range of a number;
    ``choices``: the allowed strings; ``live``: may change while the node runs."""

    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    live: bool = False

    def check(self, name: str, value) -> None:
        """ValueError naming the field when ``value`` is outside what it accepts."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be one of {self.choices}, got {value!r}")
        if self.low is not None and not self.low <= value <= self.high:
            raise ValueError(f"{name} must be in [{self.low:g}, {self.high:g}], got {value}")


def setting(
    default,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    live: bool = False,
):
    """A dataclass field with its default and its ``Setting`` (range, choices, description)."""
    if (low is None) != (high is None):
        raise TypeError("give both low and high, or neither")
    if low is not None and isinstance(default, bool | str):
        raise TypeError(f"a range on a {type(default).__name__} setting")
    spec = Setting(description, low, high, choices, live)
    return dataclasses.field(default=default, metadata={SETTING_KEY: spec})


def settings_of(config_class) -> dict[str, tuple[object, Setting]]:
    """name -> (default, Setting) for every field of a config dataclass (class or instance)."""
    return {
        f.name: (f.default, f.metadata[SETTING_KEY])
        for f in dataclasses.fields(config_class)
        if SETTING_KEY in f.metadata
    }


def check_settings(config) -> None:
    """Validate every ``setting`` field of a config instance: type of the default, then range
    or choices. Call from ``__post_init__``."""
    for name, (default, spec) in settings_of(config).items():
        value = getattr(config, name)
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
            value, _accepted_types(default)
        ):
            raise ValueError(
                f"{name} must be a {type(default).__name__}, got {type(value).__name__} {value!r}"
            )
        spec.check(name, value)


def _accepted_types(default) -> tuple[type, ...]:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)  # 1 for 1.0 (YAML, the command line)
    return (type(default),)
