# Self-documenting: `make help` lists the targets with their `##` comments.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NETNS := scripts/in-netns.sh
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup fetch lint fmt typecheck test test-unit run clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@scripts/setup-system.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) fetch ## install system tools, the venv, Kafka jars, OpenClaw (idempotent)

fetch: $(STAMP) ## fetch Kafka (Maven Central) and OpenClaw + Node 24 (npm) into the cache
	$(BIN)/python -m devstack fetch

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy .

test-unit: $(STAMP) ## unit tests only (no servers)
	$(BIN)/pytest -m 'not integration and not slow'

test: setup lint typecheck ## set up, lint, typecheck, then every test on the real Kafka, PostgreSQL and OpenClaw
	$(NETNS) $(BIN)/pytest

run: setup ## set up and run the whole pipeline locally (Ctrl-C stops it)
	$(NETNS) $(BIN)/openclaw-saas dev --fresh

clean: ## remove local state (not the download cache)
	rm -rf .state

.PHONY: bench compose-check
bench: setup ## benchmarks on the real broker and database (not part of `make test`): table + bench/results.json
	$(NETNS) $(BIN)/python -m bench

.PHONY: fuzz
FUZZ_TESTS := tests/ingress/test_properties.py tests/ingress/test_fuzz_telegram.py \
	tests/ingress/test_fuzz_whatsapp.py tests/ingress/test_fuzz_stripe.py \
	tests/ingress/smtp/test_fuzz_mime.py tests/schemas/test_fuzz_codec.py
fuzz: $(STAMP) ## fuzz every route and parser with 100,000 inputs per test (FUZZ_EXAMPLES=n to change)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100000} $(BIN)/pytest -q \
		--hypothesis-show-statistics $(FUZZ_TESTS)

.PHONY: chaos
chaos: setup ## chaos run: 20,000 messages while workers, Kafka and PostgreSQL die (CHAOS_ARGS="--seed N ...")
	$(NETNS) $(BIN)/python -m chaos $(CHAOS_ARGS)

compose-check: ## validate docker-compose.yml (`docker compose config`, or Debian's docker-compose)
	@if docker compose version >/dev/null 2>&1; then docker compose config -q; \
	else docker-compose config -q; fi
	@echo "docker-compose.yml is valid"

.PHONY: image
image: fetch ## build the OpenClaw gateway image rootfs (cached); with DOCKER_HOST set, import it there
	$(BIN)/python -m devstack.docker_engine image
