# aqi — `make help` lists the targets. `make demo` and `make test` set everything up on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
AQI := $(BIN)/aqi
STATION ?= Aotizhongxin
DATA_DIR ?= data
export AQI_DATA_DIR ?= $(DATA_DIR)

.PHONY: help install demo test lint format ingest train train-all evaluate forecast bench clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python >= 3.11 needed; PY=python3 make ...)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install aqi with dev tools

demo: $(VENV)/.installed ## ingest → train one station → forecast → evaluate, on the real data
	AQI=$(AQI) STATION=$(STATION) bash scripts/demo.sh

test: $(VENV)/.installed ## run the test suite (lint first)
	$(BIN)/ruff check aqi tests scripts
	$(BIN)/pytest -q

lint: $(VENV)/.installed ## ruff lint and format check
	$(BIN)/ruff check aqi tests scripts
	$(BIN)/ruff format --check aqi tests scripts

format: $(VENV)/.installed ## ruff format and autofix
	$(BIN)/ruff format aqi tests scripts
	$(BIN)/ruff check --fix aqi tests scripts

ingest: $(VENV)/.installed ## ingest the raw Beijing data (../shared, $$AQI_RAW, or a download)
	$(AQI) ingest $$(bash scripts/raw_source.sh $(AQI))

train: $(VENV)/.installed ## train STATION (default Aotizhongxin)
	$(AQI) train --station $(STATION)

train-all: $(VENV)/.installed ## train one network model over every station in the store
	$(AQI) train --station all

evaluate: $(VENV)/.installed ## evaluate every trained station against the baselines
	$(AQI) evaluate --station all

forecast: $(VENV)/.installed ## next-24-hour forecast for STATION
	$(AQI) forecast --station $(STATION)

bench: $(VENV)/.installed ## speed and memory benchmarks → data/reports/bench.json
	$(BIN)/python scripts/bench.py --data-dir $(AQI_DATA_DIR)

clean: ## remove generated data (store, models, reports); never data/raw
	rm -rf $(AQI_DATA_DIR)/store $(AQI_DATA_DIR)/models $(AQI_DATA_DIR)/reports
