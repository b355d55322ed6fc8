"""A module of one's own that adds two methods, each its class and one `register` call: what
adding a baseline or a meta-learning algorithm takes (nothing else is edited). Named in
``METAREC_METHODS`` (with its folder on PYTHONPATH), it is imported on the registry's first use
in every process; tests/app/test_app_plugin_methods.py checks the pages offer both."""

from __future__ import annotations

from metarec_core.methods import registry
from metarec_core.methods.baselines import UserBias
from metarec_core.methods.meta import FOMAML


class FirmUserBias(UserBias):
    """A baseline: user bias whose fold-in trusts a new user's first ratings less."""

    name = "firm_user_bias"
    FOLD_GRID = (20.0, 35.0, 60.0)


class GentleFOMAML(FOMAML):
    """A meta-learning algorithm: first-order MAML with smaller adaptation steps."""

    name = "gentle_fomaml"
    defaults = {"inner_lr": 0.2}


registry.register(registry.MethodSpec.of(FirmUserBias, "Firm user bias", "A firmer fold-in."))
registry.register(registry.MethodSpec.of(GentleFOMAML, "Gentle FOMAML", "FOMAML, smaller steps."))
