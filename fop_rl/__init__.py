"""fop-rl: First-Order Preconditioning for reinforcement learning."""

import gymnasium

__version__ = "0.1.0"
TERRAIN_ENV_ID = "fop_rl/BipedalWalkerTerrain-v0"  # fop_rl.terrain's walker

# gym.make("fop_rl/BipedalWalkerTerrain-v0", terrain=...) after `import fop_rl`
if TERRAIN_ENV_ID not in gymnasium.registry:
    gymnasium.register(TERRAIN_ENV_ID, entry_point="fop_rl.terrain:BipedalWalkerTerrain",
                       max_episode_steps=2000)
