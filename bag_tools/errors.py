"""The one exception family of bag_tools: every user-facing failure is a ``BagToolsError``."""

from __future__ import annotations


class BagToolsError(Exception):
    """Base of every error bag_tools raises on bad input; the message is one line for users."""


class BagOpenError(BagToolsError):
    """A path is not a bag, or the bag is corrupt or truncated."""


class MissingTypeError(BagToolsError):
    """A bag uses message types whose definitions are neither embedded nor known."""


class ProfileError(BagToolsError):
    """A robot profile is invalid; the message names the key."""


class IngestError(BagToolsError):
    """A bag cannot become an episode (missing topic, bad message, too short, ...)."""


class InvalidStreamError(IngestError):
    """A stream of a bag is invalid at more than the allowed share of its grid steps
    (``max_invalid``); nothing of that bag is written."""


class ImageDecodeError(BagToolsError):
    """An image message cannot be decoded (unknown encoding, bad payload)."""


class DatasetError(BagToolsError):
    """A dataset directory is missing, inconsistent or of an unknown schema version."""
