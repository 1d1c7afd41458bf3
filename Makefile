# VEP — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= .data
PKI_PORT ?= 9180
STAMP := $(VENV)/.installed

.PHONY: help venv run test test-unit lint fmt pg-start pg-stop pki migrate verify-audit bench bench-deliveries clean distclean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@ops/dev/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the project with its dev extras

run: $(STAMP) ## Start PostgreSQL, the dev PKI + OCSP/CRL/TSA, migrate, serve https://127.0.0.1:8443
	@DATA=$(DATA) PKI_PORT=$(PKI_PORT) BIN=$(BIN) ops/dev/run.sh

test: $(STAMP) ## Set up from scratch (own PostgreSQL cluster, PKI, TLS servers) and run every test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Only the tests that need no database or network services
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff format --check, ruff check, mypy --strict on server/
	$(BIN)/ruff format --check server tests ops
	$(BIN)/ruff check server tests ops
	$(BIN)/mypy

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format server tests ops
	$(BIN)/ruff check --fix server tests ops

pg-start: ## Start (or reuse) the private PostgreSQL cluster; prints its DSN
	@ops/dev/pg.sh start $(DATA)

pg-stop: ## Stop the private PostgreSQL cluster
	@ops/dev/pg.sh stop $(DATA)

pki: $(STAMP) ## Generate the development PKI into $(DATA)/pki (keys never committed)
	$(BIN)/vep dev-pki init --dir $(DATA)/pki --port $(PKI_PORT)

migrate: $(STAMP) ## Apply migrations to $$VEP_DATABASE_URL (or the private cluster)
	@VEP_DATABASE_URL=$${VEP_DATABASE_URL:-$$(ops/dev/pg.sh start $(DATA))} $(BIN)/vep migrate

verify-audit: $(STAMP) ## Verify the audit hash chain (R9.1)
	@VEP_DATABASE_URL=$${VEP_DATABASE_URL:-$$(ops/dev/pg.sh start $(DATA))} $(BIN)/vep verify-audit

bench: $(STAMP) ## Run the authentication benchmark (figures go in the README)
	$(BIN)/python ops/bench/auth_bench.py

bench-deliveries: $(STAMP) ## Run the delivery benchmark against its baseline (30 s each)
	$(BIN)/python ops/bench/deliveries.py

clean: ## Stop the cluster; remove caches (keeps .venv and .data)
	-@ops/dev/pg.sh stop $(DATA)
	rm -rf .pytest_cache .mypy_cache .ruff_cache

distclean: clean ## Also remove .venv and .data (the dev PKI, the database)
	rm -rf $(VENV) $(DATA) $$(readlink -f $(DATA)/pg-cluster 2>/dev/null)
