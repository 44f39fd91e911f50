"""Declaring node parameters with descriptions and ranges, one line each.

Defaults are never empty lists: an empty list has no element type, and Humble's rclpy would
declare it as a byte array, which a YAML list of strings then fails to override.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

__all__ = ['declare']


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    read_only: bool = True,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declare ``name`` and return its value (override from the params file or CLI, else default).

    ``lo``/``hi`` become an ``IntegerRange`` or ``FloatingPointRange`` (rclpy refuses values
    outside them); ``choices`` are listed in the description and checked here.
    """
    text = description
    if choices:
        text += f' One of: {", ".join(choices)}.'
    descriptor = ParameterDescriptor(description=text, read_only=read_only)
    if lo is not None and hi is not None:
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise TypeError(f'parameter {name}: a range needs a numeric default')
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
        descriptor.additional_constraints = f'{lo} <= {name} <= {hi}'
    value = node.declare_parameter(name, default, descriptor).value
    if choices and value not in choices:
        msg = f'parameter {name}: {value!r} is not one of {", ".join(choices)}'
        raise ValueError(msg)
    return value
