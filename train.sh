#!/usr/bin/env bash
# Fine-tune a backbone on a converted dataset: the original train.sh interface.
# Every variable can be overridden from the environment, e.g.
#   DATASET_NAME=cub_200 DATASET_DIR=data/cub_200/tfrecords \
#   CHECKPOINT_PATH=checkpoints/inception_v3_iNat_299.ckpt \
#   CHECKPOINT_EXCLUDE_SCOPES=InceptionV3/Logits,InceptionV3/AuxLogits \
#   TRAINABLE_SCOPES=InceptionV3/Logits,InceptionV3/AuxLogits TRAIN_IMAGE_SIZE=299 MAX_STEPS=20000 ./train.sh
# The defaults train from scratch on the synthetic dataset, small enough for a CPU.
# Extra arguments are passed to python -m fgtf.train (e.g. --strategy mirrored).
set -euo pipefail
cd "$(dirname "$0")"

DATASET_NAME=${DATASET_NAME:-synthetic}
DATASET_DIR=${DATASET_DIR:-data/${DATASET_NAME}/tfrecords}
MODEL_DIR=${MODEL_DIR:-runs/${DATASET_NAME}}
CHECKPOINT_PATH=${CHECKPOINT_PATH:-}
CHECKPOINT_EXCLUDE_SCOPES=${CHECKPOINT_EXCLUDE_SCOPES:-}
TRAINABLE_SCOPES=${TRAINABLE_SCOPES:-}
MODEL_NAME=${MODEL_NAME:-inception_v3}
HEAD=${HEAD:-none}            # none, sef, sam or cle
SEF_GROUPS=${SEF_GROUPS:-4}
SAM_TARGET=${SAM_TARGET:-cam}  # cam or gradcam
SAM_BILINEAR=${SAM_BILINEAR:-single}
OPTIMIZER=${OPTIMIZER:-momentum}
LR=${LR:-0.01}
END_LR=${END_LR:-0.0001}
LR_DECAY=${LR_DECAY:-0.5}
EPOCHS_PER_DECAY=${EPOCHS_PER_DECAY:-4.0}
WEIGHT_DECAY=${WEIGHT_DECAY:-0.00004}
MOVING_AVERAGE_DECAY=${MOVING_AVERAGE_DECAY:-}
BATCH_NORM_DECAY=${BATCH_NORM_DECAY:-}   # empty: the network's own (0.9997 Inception, 0.997 ResNet)
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
TRAIN_IMAGE_SIZE=${TRAIN_IMAGE_SIZE:-96}
MAX_STEPS=${MAX_STEPS:-200}
LOG_STEPS=${LOG_STEPS:-20}
SAVE_SUMMARIES_SECS=${SAVE_SUMMARIES_SECS:-60}
SAVE_MODEL_SECS=${SAVE_MODEL_SECS:-120}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

args=(
  --dataset_name="${DATASET_NAME}" --dataset_dir="${DATASET_DIR}" --train_dir="${MODEL_DIR}"
  --model_name="${MODEL_NAME}" --head="${HEAD}"
  --sef_groups="${SEF_GROUPS}" --sam_target="${SAM_TARGET}" --sam_bilinear="${SAM_BILINEAR}"
  --optimizer="${OPTIMIZER}" --learning_rate="${LR}" --end_learning_rate="${END_LR}"
  --learning_rate_decay_factor="${LR_DECAY}" --num_epochs_per_decay="${EPOCHS_PER_DECAY}"
  --weight_decay="${WEIGHT_DECAY}" --batch_size="${TRAIN_BATCH_SIZE}" --train_image_size="${TRAIN_IMAGE_SIZE}"
  --max_number_of_steps="${MAX_STEPS}" --log_every_n_steps="${LOG_STEPS}"
  --save_summaries_secs="${SAVE_SUMMARIES_SECS}" --save_interval_secs="${SAVE_MODEL_SECS}"
)
[ -n "${CHECKPOINT_PATH}" ] && args+=(--checkpoint_path="${CHECKPOINT_PATH}")
[ -n "${CHECKPOINT_EXCLUDE_SCOPES}" ] && args+=(--checkpoint_exclude_scopes="${CHECKPOINT_EXCLUDE_SCOPES}")
[ -n "${TRAINABLE_SCOPES}" ] && args+=(--trainable_scopes="${TRAINABLE_SCOPES}")
[ -n "${MOVING_AVERAGE_DECAY}" ] && args+=(--moving_average_decay="${MOVING_AVERAGE_DECAY}")
[ -n "${BATCH_NORM_DECAY}" ] && args+=(--batch_norm_decay="${BATCH_NORM_DECAY}")

exec "${PYTHON}" -m fgtf.train "${args[@]}" "$@"
