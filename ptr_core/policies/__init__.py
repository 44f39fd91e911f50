"""Observation encoder, 1-D U-Net and the ``diffusion`` / ``flow`` action policies."""

from ptr_core.policies.encoder import ObservationEncoder
from ptr_core.policies.output import PolicyOutput
from ptr_core.policies.policy import ActionPolicy, DiffusionPolicy, FlowPolicy, build_policy

__all__ = [
    'ActionPolicy',
    'DiffusionPolicy',
    'FlowPolicy',
    'ObservationEncoder',
    'PolicyOutput',
    'build_policy',
]
