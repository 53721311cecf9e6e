# Two entry points for a fresh machine with Python 3.11:
#   make demo   set up .venv and run the main job on the synthetic default
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data

.PHONY: demo test install

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job, on CPU in minutes: synthetic birds -> TFRecords -> train ->
# eval -> features (plus a near and a far synthetic domain) -> linear probe ->
# domain similarity. Every step resumes or skips work already done.
# The CPU-sized backbone at the images' own size keeps the run to minutes;
# e.g. `make demo MODEL=inception_v3 IMAGE_SIZE=96 RUN=runs/synthetic_v3` for the paper's network.
MODEL ?= small_cnn
IMAGE_SIZE ?= 160
STEPS ?= 300
RUN ?= runs/synthetic
FEATURES ?= feature
demo: $(STAMP)
	$(BIN)/python -m fgtf.datasets.synthetic --out $(DATA)/synthetic --family birds --seed 0
	$(BIN)/python -m fgtf.convert --dataset synthetic --data_dir $(DATA) --num_shards 4
	MODEL_DIR=$(RUN) DATASET_DIR=$(DATA)/synthetic/tfrecords MODEL_NAME=$(MODEL) TRAIN_IMAGE_SIZE=$(IMAGE_SIZE) MAX_STEPS=$(STEPS) BATCH_NORM_DECAY=0.9 PYTHON=$(BIN)/python ./train.sh
	MODEL_DIR=$(RUN) DATASET_DIR=$(DATA)/synthetic/tfrecords PYTHON=$(BIN)/python ./eval.sh
	$(BIN)/python -m fgtf.datasets.synthetic --out $(DATA)/synthetic_birds_b --family birds --seed 1
	$(BIN)/python -m fgtf.datasets.synthetic --out $(DATA)/synthetic_planes --family planes --seed 2
	$(BIN)/python -m fgtf.extract_features --dataset synthetic --dataset_dir $(DATA)/synthetic --name birds_a --checkpoint $(RUN) --out $(FEATURES)/demo
	$(BIN)/python -m fgtf.extract_features --dataset synthetic --dataset_dir $(DATA)/synthetic_birds_b --name birds_b --checkpoint $(RUN) --out $(FEATURES)/demo
	$(BIN)/python -m fgtf.extract_features --dataset synthetic --dataset_dir $(DATA)/synthetic_planes --name planes --checkpoint $(RUN) --out $(FEATURES)/demo
	$(BIN)/python -m fgtf.transfer.linear --features $(FEATURES)/demo --dataset birds_b
	$(BIN)/python -m fgtf.transfer.domain_similarity --features $(FEATURES)/demo --sources birds_a --targets birds_b,planes --min_images 1

test: $(STAMP)
	$(BIN)/python -m pytest -q
