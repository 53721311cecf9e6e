#!/usr/bin/env bash
# Evaluate a training run: the original eval.sh interface, env-var overridable.
#   MODEL_DIR=runs/cub_200 DATASET_DIR=data/cub_200 ./eval.sh
# EVAL_IMAGE_SIZE empty: the run's training size (fgtf.evaluate reads it from
# the run's run_config.json). EVAL_INTERVAL_SECS > 0 keeps watching MODEL_DIR
# and evaluates every new checkpoint. The defaults evaluate what train.sh's
# defaults train. Relative paths are taken from the directory you run it in,
# not the repository's. Extra arguments are passed to python -m fgtf.evaluate.
set -euo pipefail
REPO=$(cd "$(dirname "$0")" && pwd)

DATASET_NAME=${DATASET_NAME:-synthetic}
DATASET_DIR=${DATASET_DIR:-data/${DATASET_NAME}}
MODEL_DIR=${MODEL_DIR:-runs/${DATASET_NAME}}
EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-50}
EVAL_IMAGE_SIZE=${EVAL_IMAGE_SIZE:-}
EVAL_INTERVAL_SECS=${EVAL_INTERVAL_SECS:-0}
PYTHON=${PYTHON:-$( [ -x "${REPO}/.venv/bin/python" ] && echo "${REPO}/.venv/bin/python" || echo python3 )}
# fgtf is importable from any directory, as the repository's own copy
export PYTHONPATH="${REPO}${PYTHONPATH:+:${PYTHONPATH}}"

args=(--checkpoint="${MODEL_DIR}" --dataset_dir="${DATASET_DIR}" --batch_size="${EVAL_BATCH_SIZE}"
      --eval_interval_secs="${EVAL_INTERVAL_SECS}")
[ -n "${EVAL_IMAGE_SIZE}" ] && args+=(--image_size="${EVAL_IMAGE_SIZE}")

exec "${PYTHON}" -m fgtf.evaluate "${args[@]}" "$@"
