#!/usr/bin/env bash
# Fine-tune a backbone on a converted dataset: the original train.sh interface,
# every variable overridable from the environment, e.g.
#   DATASET_NAME=cub_200 DATASET_DIR=data/cub_200 MODEL_NAME=inception_v3 \
#   CHECKPOINT_PATH=checkpoints/inception_v3_iNat_299.ckpt \
#   CHECKPOINT_EXCLUDE_SCOPES=InceptionV3/Logits,InceptionV3/AuxLogits \
#   TRAINABLE_SCOPES=InceptionV3/Logits,InceptionV3/AuxLogits TRAIN_IMAGE_SIZE=299 MAX_STEPS=20000 ./train.sh
# Extra arguments are passed to python -m fgtf.train (e.g. --strategy mirrored).
# Relative paths are taken from the directory you run it in, not the repository's.
#
# Defaults:
# * DATASET_DIR data/synthetic (python -m fgtf.datasets.synthetic --out
#   data/synthetic, then python -m fgtf.convert --dataset_dir data/synthetic
#   --num_shards 4), MODEL_NAME small_cnn, 300 steps of 32: a few minutes on
#   a CPU (`make demo` runs the whole transfer study through fgtf.demo);
# * from scratch (no CHECKPOINT_PATH), the demo's recipe, which learns there
#   (benchmarks/train_sh_defaults.py): TRAIN_IMAGE_SIZE 64, OPTIMIZER adam,
#   LR 0.001, OPT_EPSILON 1e-7 (Adam's own; slim's 1.0 suits RMSProp and
#   keeps Adam's steps too small to learn), MIN_CROP_AREA 0.5 (random crops
#   keep at least half the image, so small parts stay in view on small images);
# * fine-tuning a CHECKPOINT_PATH, the original scripts' recipe: those five
#   left empty, i.e. fgtf.train's own defaults (the checkpoint run's image
#   size, else 299; rmsprop at 0.01, epsilon 1.0; slim's crops down to 5 % of
#   the image);
# * BATCH_NORM_DECAY: 0.9 for runs of at most 1000 steps, as fgtf.train advises
#   for runs of a few hundred steps; for longer runs the network's own (0.9997
#   Inception, 0.997 ResNet). Set it to override either;
# * the rest of the schedule (END_LR, LR_DECAY, EPOCHS_PER_DECAY,
#   WEIGHT_DECAY, MOVING_AVERAGE_DECAY) left empty: fgtf.train's own defaults
#   (decayed by 0.94 every 2 epochs to at least 0.0001, weight decay 0.00004,
#   no EMA; see python -m fgtf.train --help);
# * DATASET_DIR: the dataset folder (fgtf.train reads the shards in its
#   tfrecords/ subfolder, or the folder itself when it holds them).
# A variable set empty (e.g. OPTIMIZER=) means fgtf.train's own default.
set -euo pipefail
REPO=$(cd "$(dirname "$0")" && pwd)

DATASET_NAME=${DATASET_NAME:-synthetic}
DATASET_DIR=${DATASET_DIR:-data/${DATASET_NAME}}
MODEL_DIR=${MODEL_DIR:-runs/${DATASET_NAME}}
CHECKPOINT_PATH=${CHECKPOINT_PATH:-}
CHECKPOINT_EXCLUDE_SCOPES=${CHECKPOINT_EXCLUDE_SCOPES:-}
TRAINABLE_SCOPES=${TRAINABLE_SCOPES:-}
MODEL_NAME=${MODEL_NAME:-small_cnn}
HEAD=${HEAD:-none}             # none, sef, sam or cle
SEF_GROUPS=${SEF_GROUPS:-4}
SAM_TARGET=${SAM_TARGET:-cam}  # cam or gradcam
SAM_BILINEAR=${SAM_BILINEAR:-single}
# from scratch: the demo's recipe; fine-tuning a checkpoint: fgtf.train's (the original scripts')
if [ -z "${CHECKPOINT_PATH}" ]; then
  RECIPE_IMAGE_SIZE=64 RECIPE_OPTIMIZER=adam RECIPE_LR=0.001 RECIPE_OPT_EPSILON=1e-7 RECIPE_MIN_CROP_AREA=0.5
else
  RECIPE_IMAGE_SIZE= RECIPE_OPTIMIZER= RECIPE_LR= RECIPE_OPT_EPSILON= RECIPE_MIN_CROP_AREA=
fi
OPTIMIZER=${OPTIMIZER-${RECIPE_OPTIMIZER}}
LR=${LR-${RECIPE_LR}}
OPT_EPSILON=${OPT_EPSILON-${RECIPE_OPT_EPSILON}}
END_LR=${END_LR:-}
LR_DECAY=${LR_DECAY:-}
EPOCHS_PER_DECAY=${EPOCHS_PER_DECAY:-}
WEIGHT_DECAY=${WEIGHT_DECAY:-}
MOVING_AVERAGE_DECAY=${MOVING_AVERAGE_DECAY:-}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
TRAIN_IMAGE_SIZE=${TRAIN_IMAGE_SIZE-${RECIPE_IMAGE_SIZE}}
MAX_STEPS=${MAX_STEPS:-300}
MIN_CROP_AREA=${MIN_CROP_AREA-${RECIPE_MIN_CROP_AREA}}
if [ -z "${BATCH_NORM_DECAY+set}" ]; then
  if [ "${MAX_STEPS}" -le 1000 ] 2>/dev/null; then BATCH_NORM_DECAY=0.9; else BATCH_NORM_DECAY=; fi
fi
LOG_STEPS=${LOG_STEPS:-20}
SAVE_SUMMARIES_SECS=${SAVE_SUMMARIES_SECS:-60}
SAVE_MODEL_SECS=${SAVE_MODEL_SECS:-120}
PYTHON=${PYTHON:-$( [ -x "${REPO}/.venv/bin/python" ] && echo "${REPO}/.venv/bin/python" || echo python3 )}
# fgtf is importable from any directory, as the repository's own copy
export PYTHONPATH="${REPO}${PYTHONPATH:+:${PYTHONPATH}}"

args=(
  --dataset="${DATASET_NAME}" --dataset_dir="${DATASET_DIR}" --run_dir="${MODEL_DIR}"
  --model="${MODEL_NAME}" --head="${HEAD}"
  --sef_groups="${SEF_GROUPS}" --sam_target="${SAM_TARGET}" --sam_bilinear="${SAM_BILINEAR}"
  --batch_size="${TRAIN_BATCH_SIZE}"
  --max_number_of_steps="${MAX_STEPS}" --log_every_n_steps="${LOG_STEPS}"
  --save_summaries_secs="${SAVE_SUMMARIES_SECS}" --save_interval_secs="${SAVE_MODEL_SECS}"
)
optional() {  # optional VALUE FLAG: pass --FLAG=VALUE only when VALUE is set
  [ -n "$1" ] && args+=("--$2=$1")
  return 0
}
optional "${TRAIN_IMAGE_SIZE}" image_size
optional "${CHECKPOINT_PATH}" checkpoint
optional "${CHECKPOINT_EXCLUDE_SCOPES}" checkpoint_exclude_scopes
optional "${TRAINABLE_SCOPES}" trainable_scopes
optional "${OPTIMIZER}" optimizer
optional "${LR}" learning_rate
optional "${OPT_EPSILON}" opt_epsilon
optional "${END_LR}" end_learning_rate
optional "${LR_DECAY}" learning_rate_decay_factor
optional "${EPOCHS_PER_DECAY}" num_epochs_per_decay
optional "${WEIGHT_DECAY}" weight_decay
optional "${MOVING_AVERAGE_DECAY}" moving_average_decay
optional "${BATCH_NORM_DECAY}" batch_norm_decay
optional "${MIN_CROP_AREA}" min_crop_area

exec "${PYTHON}" -m fgtf.train "${args[@]}" "$@"
