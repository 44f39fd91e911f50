"""Batch keys: the one vocabulary of tensors between the loader, the policy and the weighter.

Shapes (glossary): ``B`` batch, ``To`` observation steps, ``L`` chunk length, ``Ds``/``Da`` the
unified (padded) state/action widths, ``C, H, W`` image channels and size, ``Δ`` future offset.
A batch is a ``dict[str, Tensor]``; images are float in [0, 1] after preprocessing.
"""

from __future__ import annotations

OBS_STATE = 'obs.state'  # float [B, To, Ds], normalized, zero-padded past the robot's width
OBS_IMAGE_PREFIX = 'obs.images.'  # + role: float [B, To, C, H, W]
OBS_CAMERA_MASK = 'obs.camera_mask'  # bool [B, n_roles]: which camera roles this robot has
ACTION = 'action'  # float [B, L, Da], normalized
ACTION_MASK = 'action_mask'  # bool [B, L, Da]: chunk padding x the robot's action dims
STATE_MASK = 'state_mask'  # bool [B, Ds]
FUTURE_STATE = 'future.state'  # float [B, Ds]: state at t + Δ (PTR target)
FUTURE_IMAGE_PREFIX = 'future.images.'  # + role: float [B, C, H, W] at t + Δ
FUTURE_VALID = 'future_valid'  # bool [B]: a frame exists at t + Δ
ROBOT_ID = 'robot_id'  # long [B], index into UnifiedLayout.robots
TASK_ID = 'task_id'  # long [B], index into the task vocabulary
DATASET_ID = 'dataset_id'  # long [B], which of the mixed datasets
EPISODE_ID = 'episode_index'  # long [B], global episode index (unique across datasets)
FRAME_INDEX = 'frame_index'  # long [B], t within the episode
SOURCE_ID = 'source_id'  # long [B], index of the episode's quality/source tag (-1 unknown)
SAMPLE_WEIGHT = 'sample_weight'  # float [B]: the data's weight of the sample's loss (data.trust
#                                   with trust_apply: loss); absent: every sample weighs 1


def obs_image_key(role: str) -> str:
    return f'{OBS_IMAGE_PREFIX}{role}'


def future_image_key(role: str) -> str:
    return f'{FUTURE_IMAGE_PREFIX}{role}'

# Per-sample randomness drawn by the loader from (seed, sample number), so that training noise
# does not depend on the batch composition: DDP shards, resume and worker count leave it unchanged.
# Policies fall back to the torch RNG when these keys are absent (e.g. hand-built batches).
NOISE = 'noise'  # float [B, L, Da]: standard normal (diffusion ε / flow source sample)
NOISE_LEVEL = 'noise_level'  # float [B] in [0, 1): diffusion timestep / flow σ quantile
SAMPLE_INDEX = 'sample_index'  # long [B]: position in the global sample stream
