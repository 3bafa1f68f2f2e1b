"""Optimizers with modes: schedule-free ones (``schedulefree``) keep two sets of weights, the
point where the gradient is taken (train mode: PPO collects its rollouts and steps there) and
their average (eval mode: the weights to evaluate and keep). A run switches to eval mode where
it evaluates, checkpoints and saves, so that every model on disk holds the weights that were
evaluated, and back to train mode to go on; a model loaded to train goes to train mode first.
An optimizer without ``train()`` and ``eval()`` methods is left alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from stable_baselines3.common.base_class import BaseAlgorithm


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether an optimizer has a train and an eval mode (schedulefree's API)."""
    return all(callable(getattr(type(optimizer), m, None)) for m in ("train", "eval"))


def to_train_mode(model: BaseAlgorithm) -> None:
    """A built or loaded model's optimizer in train mode, as its steps need."""
    optimizer = model.policy.optimizer
    if has_modes(optimizer):
        optimizer.train()


@contextlib.contextmanager
def evaluated_weights(model: BaseAlgorithm) -> Iterator[None]:
    """The model's weights are the ones to evaluate and save inside the block (an optimizer
    with modes in eval mode), its training weights again after it."""
    optimizer = model.policy.optimizer
    if not has_modes(optimizer):
        yield
        return
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()
