#!/usr/bin/env bash
# Evaluate a training run: the original eval.sh interface, env-var overridable.
#   MODEL_DIR=runs/cub_200 DATASET_DIR=data/cub_200/tfrecords EVAL_IMAGE_SIZE=299 ./eval.sh
# EVAL_INTERVAL_SECS > 0 keeps watching MODEL_DIR and evaluates every new checkpoint.
# Extra arguments are passed to python -m fgtf.evaluate.
set -euo pipefail
cd "$(dirname "$0")"

DATASET_NAME=${DATASET_NAME:-synthetic}
DATASET_DIR=${DATASET_DIR:-data/${DATASET_NAME}/tfrecords}
MODEL_DIR=${MODEL_DIR:-runs/${DATASET_NAME}}
EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-50}
EVAL_IMAGE_SIZE=${EVAL_IMAGE_SIZE:-}
EVAL_INTERVAL_SECS=${EVAL_INTERVAL_SECS:-0}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

args=(--checkpoint_path="${MODEL_DIR}" --dataset_dir="${DATASET_DIR}" --batch_size="${EVAL_BATCH_SIZE}"
      --eval_interval_secs="${EVAL_INTERVAL_SECS}")
[ -n "${EVAL_IMAGE_SIZE}" ] && args+=(--eval_image_size="${EVAL_IMAGE_SIZE}")

exec "${PYTHON}" -m fgtf.evaluate "${args[@]}" "$@"
