"""The data-quality methods, one wing each: ``ptr/`` (Posterior-Transition Reweighting, the
paper's online method: a per-sample weighter) and ``trust/`` (trust scored before training by
``ptr score``; a property of the data: ``data.trust``, applied where windows are drawn, by
``ptr_core.data.build_data`` and ``MixtureSampler`` -- no weighter).

Weighters: ``uniform`` and ``ptr``. ``SampleWeighter`` (``base``) declares every hook the
trainer calls: ``bind``, ``set_group_names``, ``forward``, ``after_step``.

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
