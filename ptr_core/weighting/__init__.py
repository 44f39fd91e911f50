"""Per-sample weighters: ``uniform``, ``ptr`` (Posterior-Transition Reweighting, online) and
``trust`` (a trust file scored before training by ``ptr score``, applied by sampling).

``build_weighter(name, options)`` is the one way the trainer gets a weighter. ``ptr`` is imported
lazily from ``ptr_core.weighting.ptr`` (``PTRWeighter.from_options``) so that the uniform path
never depends on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ptr_core.errors import ConfigError
from ptr_core.weighting.base import (
    PolicyOutput,
    SampleWeighter,
    UniformWeighter,
    WeightOutput,
    weighted_mean,
)

__all__ = [
    'WEIGHTERS',
    'PolicyOutput',
    'SampleWeighter',
    'UniformWeighter',
    'WeightOutput',
    'build_weighter',
    'weighted_mean',
]

# name -> (module, class); each class has ``from_options(options) -> SampleWeighter``
# or takes no options.
WEIGHTERS: dict[str, tuple[str, str]] = {
    'uniform': ('ptr_core.weighting.base', 'UniformWeighter'),
    'ptr': ('ptr_core.weighting.ptr', 'PTRWeighter'),
    'trust': ('ptr_core.weighting.trust.weighter', 'TrustWeighter'),
}


def build_weighter(name: str, options: Mapping[str, Any] | None = None) -> SampleWeighter:
    """The weighter called ``name`` configured by ``options`` (``weighter.options``)."""
    options = dict(options or {})
    if name not in WEIGHTERS:
        msg = f'weighter.name: unknown weighter {name!r}; choose one of {sorted(WEIGHTERS)}'
        raise ConfigError(msg)
    module_name, cls_name = WEIGHTERS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            msg = f'weighter.name: {name!r} is not available in this build ({module_name} missing)'
            raise ConfigError(msg) from err
        raise
    cls = getattr(module, cls_name)
    if hasattr(cls, 'from_options'):
        weighter: SampleWeighter = cls.from_options(options)
        return weighter
    if options:
        msg = f'weighter.options: the {name!r} weighter takes no options, got {sorted(options)}'
        raise ConfigError(msg)
    built: SampleWeighter = cls()
    return built
