"""The ``bohb-sync`` preset's searcher: Ray's TuneBOHB, telling which configurations its model chose.

Its own module because importing TuneBOHB imports hpbandster and statsmodels (about a second),
which no other preset needs; and a module-level class because Tune pickles its searcher.
"""

from __future__ import annotations

from ray.tune.search.bohb import TuneBOHB


class TaggedTuneBOHB(TuneBOHB):
    """TuneBOHB that records, per trial, whether hpbandster's ``get_config`` used its model
    (``proposals``: trial id -> "model" | "random")."""

    def __init__(self, *args, **kwargs):
        self.proposals: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id):
        bohber, picked = self.bohber, {}
        original = bohber.get_config

        def get_config(budget):
            config, info = original(budget)
            picked.update(info or {})
            return config, info

        bohber.get_config = get_config
        try:
            config = super().suggest(trial_id)
        finally:
            del bohber.get_config  # the class's method again (the instance attribute shadowed it)
        if config is not None:
            self.proposals[trial_id] = "model" if picked.get("model_based_pick") else "random"
        return config
