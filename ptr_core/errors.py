"""The one exception family of ptr_core: every user-facing failure is a ``PtrError``."""

from __future__ import annotations


class PtrError(Exception):
    """Base of every error ptr_core raises on bad input; the message is one line for users."""


class ConfigError(PtrError):
    """A training/eval config is invalid; the message names the key."""


class CheckpointError(PtrError):
    """A checkpoint is missing, corrupt, unsafe (pickle) or does not fit the model."""
