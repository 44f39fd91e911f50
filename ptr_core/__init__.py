"""Policies, Posterior-Transition Reweighting and the trainer.

Kept import-light: ``import ptr_core`` does not import torch (the CLI's bag commands stay fast).
"""

from ptr_core.errors import CheckpointError, ConfigError, PtrError

__all__ = ['CheckpointError', 'ConfigError', 'PtrError']
