"""fop-rl: First-Order Preconditioning for reinforcement learning."""

import gymnasium

__version__ = "0.1.0"

# gym.make("fop_rl/BipedalWalkerTerrain-v0", terrain=...) after `import fop_rl`
if "fop_rl/BipedalWalkerTerrain-v0" not in gymnasium.registry:
    gymnasium.register("fop_rl/BipedalWalkerTerrain-v0",
                       entry_point="fop_rl.terrain:BipedalWalkerTerrain", max_episode_steps=2000)
