# omnichannel-nba: the menu. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= var/run

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with dev tools

services: ## Start Kafka (KRaft, 127.0.0.1:9092) and Redis (127.0.0.1:6379), installing what is missing
	deploy/local/redis.sh start
	deploy/local/kafka.sh start

services-stop: ## Stop the Kafka broker and Redis server started by `make services`
	-deploy/local/kafka.sh stop
	-deploy/local/redis.sh stop

topics: install services ## Create or verify every topic
	$(BIN)/nba topics

run: install services ## The main job: services, topics, worker (background) and the demo producer
	deploy/local/run.sh

stop: ## Stop the worker started by `make run` (services keep running)
	deploy/local/run.sh stop

test: install services ## The whole suite: unit and integration tests on the real broker and Redis
	@command -v openssl >/dev/null || { S=$$([ "$$(id -u)" -ne 0 ] && echo sudo); \
	  $$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq openssl; }
	$(BIN)/pytest tests/unit tests/integration -q

faults: install ## Fault suite: 20 seeded runs + 100,000 fuzzed messages (bench/results/faults.json, fuzz.json)
	$(BIN)/python -m tests.faults.suite --runs 20 --out bench/results/faults.json
	$(BIN)/python -m tests.faults.fuzz --n 100000 --out bench/results/fuzz.json

test-unit: install ## Fast unit tests only (no services, without the slow simulator tests)
	$(BIN)/pytest tests/unit -q -m "not slow"

test-slow: install ## The slow simulator and closed-loop unit tests only (no services)
	$(BIN)/pytest tests/unit -q -m slow

lint: install ## ruff (lint and format check) and mypy --strict on the packages
	$(BIN)/ruff check app agents models schemas lab tests bench
	$(BIN)/ruff format --check app agents models schemas lab tests bench
	$(BIN)/mypy

format: install ## Format the code with ruff
	$(BIN)/ruff format app agents models schemas lab tests bench
	$(BIN)/ruff check --fix app agents models schemas lab tests bench

schemas: install ## Export JSON Schemas to schemas/json/
	$(BIN)/nba schemas

readme: install ## Regenerate the README's topic and environment tables from the code
	$(BIN)/python -m app.docs

bench: install services ## End-to-end throughput benchmark on the real broker (bench/README.md)
	$(BIN)/python -m bench.e2e

clean: ## Remove build and test leftovers (keeps .venv and the Kafka jars)
	rm -rf var build .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: help install services services-stop topics run stop test faults test-unit test-slow lint format schemas readme bench clean
