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

demo: $(STAMP)
	$(BIN)/python -m fgtf.datasets.synthetic --out $(DATA)/synthetic --seed 0
	$(BIN)/python -m fgtf.convert --dataset synthetic --data_dir $(DATA) --num_shards 4

test: $(STAMP)
	$(BIN)/python -m pytest -q
