"""Per-sample weighters: ``uniform`` and ``ptr`` (Posterior-Transition Reweighting)."""
