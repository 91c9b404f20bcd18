# mlops-lab. The two commands a new user needs: `make demo` and `make test`.
# Every target sets up the environment first if needed (see scripts/setup.sh).
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: help setup demo test bench lint fmt lock up down status clean docs docs-serve

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv from the lock (no-op when nothing changed)

$(STAMP): requirements/lock.txt pyproject.toml scripts/setup.sh
	@scripts/setup.sh && touch $@

demo: setup ## play the whole reference story locally; prints where the report is
	@$(BIN)/mlops-lab demo

test: setup ## run the test suite (real MLflow, uvicorn, locust)
	@$(BIN)/pytest $(PYTEST_ARGS)

bench: setup ## benchmarks -> var/bench/{serving,router,canary,drift}.{json,md} (~15 min)
	@$(BIN)/python -m mlops_lab.bench.serving
	@$(BIN)/python -m mlops_lab.bench.router
	@$(BIN)/python -m mlops_lab.bench.canary
	@$(BIN)/python -m mlops_lab.bench.drift

docs: setup ## build the docs site (strict) into var/site
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet && echo "docs: var/site/index.html"

docs-serve: setup ## serve the docs site on http://127.0.0.1:8080 with live reload
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8080

lint: setup ## ruff + mypy
	@$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

fmt: setup ## format the code
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .

lock: ## re-resolve requirements/main.in into requirements/lock.txt
	@$(BIN)/uv pip compile --quiet --python-version 3.11 requirements/main.in -o requirements/lock.txt

up: setup ## start the local system (MLflow, servers, router, monitor, controller, Prometheus)
	@$(BIN)/mlops-lab up

down: ## stop every local process
	@[ ! -x $(BIN)/mlops-lab ] || $(BIN)/mlops-lab down

status: setup ## what runs where
	@$(BIN)/mlops-lab status

clean: down ## remove runtime state (var/) and caches; keeps .venv
	@rm -rf var .pytest_cache .mypy_cache .ruff_cache
