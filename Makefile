# Two entry points for a fresh machine with Python 3.11:
#   make demo   set up .venv and run the main job on the synthetic default
#   make test   set up .venv and run the whole test suite
# and one for the repository's notebooks:
#   make notebooks   run them on the demo's world and pretrained run and store their outputs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data

.PHONY: demo test install notebooks

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job, on CPU in minutes: the paper's transfer study in miniature on
# the synthetic world (generate -> convert -> pretrain on the source pool ->
# per target: probe, fine-tune, from scratch, EMD similarity -> table,
# runs/demo/summary.json, runs/demo/transfer_vs_similarity.png). Every step
# resumes or skips finished work. `make demo SEED=1` uses another world.
SEED ?= 0
demo: $(STAMP)
	$(BIN)/python -m fgtf.demo --seed $(SEED) --data_dir $(DATA)

# notebooks/*.ipynb executed in full on `make demo`'s world and pretrained
# source run (the demo is made first, or only reloaded when done), written back
# with their outputs when every cell ran clean (notebooks/execute.py).
notebooks: demo
	$(BIN)/python notebooks/execute.py

test: $(STAMP)
	$(BIN)/python -m pytest -q
