"""``expert``: the scripted expert, recorded as executed."""

from __future__ import annotations

from ptr_sim.sources.base import SourceBehavior

__all__ = ['Expert']


class Expert(SourceBehavior):
    name = 'expert'
    usage = 'expert'
