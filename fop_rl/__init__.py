"""fop-rl: First-Order Preconditioning for reinforcement learning."""

__version__ = "0.1.0"
