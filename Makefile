# dermlab — `make install`, then `make demo`; `make test` runs the test suite.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
# DATA_ROOT: the folder holding one sub-folder per data set, e.g. $(DATA_ROOT)/isic2017, $(DATA_ROOT)/ham10000
DATA_ROOT ?=
PAPERS    := arl patch weighting isic2018 baseline cross_dataset metadata external
# $(call quote,TEXT): TEXT as one shell word, so a DATA_ROOT with spaces, quotes or non-ASCII letters stays one path
quote      = '$(subst ','\'',$(1))'
GRID_DATA  = $(if $(DATA_ROOT),--data-root $(call quote,$(DATA_ROOT)))
GRID_FIRST = $(if $(FIRST),--first $(FIRST))   # smoke targets: FIRST=1 runs one cell per table and data set
export WANDB_MODE ?= offline

.PHONY: help install docs demo demo-synthetic test test-slow test-all test-real-data lint bench bench-gpu synth clean dds dds-smoke isic2018-seg isic2018-seg-smoke \
        $(PAPERS) $(PAPERS:%=%-smoke)

help:            ## list targets
	@grep -E '^[a-zA-Z0-9_/%$$():=-]+( [a-zA-Z0-9_-]+)*:.*## ' $(MAKEFILE_LIST) \
		| sed -e 's/^\$$(PAPERS:%=%-smoke)/<paper>-smoke/' -e 's/^\$$(PAPERS)/<paper>/' \
		| awk -F':.*## ' '{printf "  %-34s %s\n",$$1,$$2}'

install:         ## create .venv and install dermlab (editable) with the dev, weights, docs and export extras
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,weights,docs,export]'

docs:            ## the documentation site (Sphinx, MyST pages) into docs/_build/html; warnings are errors
	$(BIN)/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html

demo:            ## real CC0 sample → fine-tune ImageNet EfficientNet-Lite0 → test → submission → score + AUC 95% CI (CPU, no download)
	$(BIN)/dermlab demo $(ARGS)

demo-synthetic:  ## synthetic ISIC 2017 → train → test → submission → score: the wiring check (CPU)
	$(BIN)/dermlab demo --synthetic --data-root $(call quote,$(or $(DATA_ROOT),data/synthetic)/isic2017) $(ARGS)

synth:           ## write the synthetic ISIC 2017 set to DATA_ROOT/isic2017 (default data/synthetic/isic2017)
	$(BIN)/dermlab synth --dataset isic2017 --out $(call quote,$(or $(DATA_ROOT),data/synthetic)/isic2017) --n 600 --size 64

dds dds-smoke:   ## dds: stage 1 + object size + stage 2, Tables 1, 2 and the Obj table (stand-in pretraining first, unless real data)
	$(if $(and $(DATA_ROOT),$(if $(findstring smoke,$@),,real)),,$(BIN)/dermlab grid run experiments/dds/synthetic_pretrain.yaml $(if $(findstring smoke,$@),--smoke $(GRID_FIRST)) --parallel $(or $(PARALLEL),1))
	$(BIN)/dermlab grid run --paper dds $(if $(findstring smoke,$@),--smoke $(GRID_FIRST)) $(GRID_DATA) --parallel $(or $(PARALLEL),1)

isic2018-seg isic2018-seg-smoke: ## isic2018 task 1 only: Table 1 (SegAN, DeepLabV3+, CRF, ensemble) and Fig. 1 [DATA_ROOT=...]
	$(BIN)/dermlab grid run experiments/isic2018/tables/table1_segmentation.yaml $(if $(findstring smoke,$@),--smoke $(GRID_FIRST)) \
		$(GRID_DATA) --parallel $(or $(PARALLEL),1)

$(PAPERS):       ## a paper's tables; DATA_ROOT = the folder holding one sub-folder per data set (isic2017/, ham10000/, ...) [PARALLEL=N]
	$(BIN)/dermlab grid run --paper $@ $(GRID_DATA) --parallel $(or $(PARALLEL),1)

$(PAPERS:%=%-smoke): ## every cell of a paper's tables for a couple of steps, CPU stand-in models (on DATA_ROOT if given) [FIRST=N]
	$(BIN)/dermlab grid run --paper $(@:-smoke=) --smoke $(GRID_DATA) $(GRID_FIRST)

test:            ## the test suite (fast tests; CPU only; one pytest-xdist worker per core)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -n auto

test-slow:       ## only the slow end-to-end tests
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m slow -n auto --maxschedchunk 1 --durations=40

test-all:        ## fast and slow tests
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m "slow or not slow"

test-real-data:  ## only the tests that read the real sample files (the real_data marker; they skip where the files are absent)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m real_data -n auto

lint:            ## ruff
	$(BIN)/ruff check .

bench:           ## benchmarks: Lightning vs bare loop; cache; ARL-CNN50 vs ResNet-50; patch attention vs multi-crop; SegAN vs DeepLabV3+; NCM vs softmax; split audit first vs cached; EfficientNet-Lite0 vs ResNet-18; LERF crops vs whole image; threads / workers / freed memory; channels-last vs NCHW; classify PyTorch vs ONNX Runtime
	WANDB_MODE=disabled $(BIN)/python benchmarks/lightning_vs_bare.py --steps 130 --warmup 10 --repeats 4
	WANDB_MODE=disabled $(BIN)/python benchmarks/lightning_vs_bare.py --size 224 --steps 40 --warmup 4 --batch-size 16 --repeats 4
	WANDB_MODE=disabled $(BIN)/python benchmarks/lightning_vs_bare_interleaved.py
	WANDB_MODE=disabled $(BIN)/python benchmarks/lightning_vs_bare_interleaved.py --size 224 --steps 44 --warmup 4 --batch-size 16
	$(BIN)/python benchmarks/cache.py
	$(BIN)/python benchmarks/arl_step_time.py
	$(BIN)/python benchmarks/patch_step_time.py
	$(BIN)/python benchmarks/segmentation_step_time.py
	$(BIN)/python benchmarks/ncm_throughput.py
	$(BIN)/python benchmarks/audit_setup.py
	$(BIN)/python benchmarks/backbone_throughput.py
	$(BIN)/python benchmarks/lerf_time.py
	WANDB_MODE=disabled $(BIN)/python benchmarks/threads_and_workers.py
	$(BIN)/python benchmarks/channels_last.py
	$(BIN)/python benchmarks/weighting_adam_scale.py
	$(BIN)/python benchmarks/classify_throughput.py

bench-gpu:       ## one GPU: ResNet-50 224 px training images/s, bare loop vs dermlab fit (bf16, channels_last, eager + compiled) vs NVIDIA's A100 anchor [ARGS=...]
	WANDB_MODE=disabled $(BIN)/python benchmarks/gpu_resnet50.py --compile $(ARGS)

clean:           ## remove runs and synthetic data
	rm -rf runs data/synthetic
