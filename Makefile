PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA_ROOT ?= data/synthetic/isic2017
export WANDB_MODE ?= offline

.PHONY: help install demo test test-slow lint bench clean

help:            ## list targets
	@grep -E '^[a-zA-Z0-9_/%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n",$$1,$$2}'

install:         ## create .venv and install dermlab editable with the dev extra
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
