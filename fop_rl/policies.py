"""SB3's actor-critic policy with its value function in a param group of its own."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule


class SplitPolicy(ActorCriticPolicy):
    """ActorCriticPolicy whose optimizer has two param groups: the policy's parameters (its
    layers, the action head and ``log_std``) and the value function's (its layers and the value
    head), the latter with the options ``value_group`` (``{"structure": "none"}``: FOP leaves the
    value function to its base optimizer).

    SB3 hands its optimizer ``self.parameters()`` in one group; this builds it again from the
    two groups, with the same ``optimizer_class`` and ``optimizer_kwargs``.
    """

    def __init__(self, *args: Any, value_group: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.value_group = dict(value_group or {})  # _build, called by __init__, reads it
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        value = [*self.mlp_extractor.value_net.parameters(), *self.value_net.parameters()]
        if not self.share_features_extractor:
            value += list(self.vf_features_extractor.parameters())
        value_ids = {id(p) for p in value}
        policy = [p for p in self.parameters() if id(p) not in value_ids]
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            [{"params": policy}, {"params": value, **self.value_group}], lr=lr_schedule(1),
            **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "value_group": self.value_group}
