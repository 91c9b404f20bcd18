# mlops-lab. The two commands a new user needs: `make demo` and `make test`.
# Every target sets up the environment first if needed (see scripts/setup.sh).
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
PYTEST_ARGS ?=
IMPL ?=
ALL ?=
STRICT ?=
S ?=
TARGET ?= local

# lab-N, hint-N, watch-N are pattern rules: N is any lab id in labs/labs.toml.
.PHONY: scenario scenarios help setup setup-gpu demo test test-fast bench lint fmt lock up down status clean docs docs-serve notebooks docker image compose-up compose-down cluster-up cluster-test cluster-down

help: ## list the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/%/N/' | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv from the lock (no-op when nothing changed)

$(STAMP): requirements/lock.txt pyproject.toml scripts/setup.sh
	@scripts/setup.sh && touch $@

setup-gpu: setup ## add the optional gpu extra (torch) to .venv: the torch model flavour, docs/gpu.md
	@$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/lock.txt -r requirements/gpu.txt
	@touch $(VENV)/.gpu-extra
	@$(BIN)/python -c "import torch; print('torch', torch.__version__, '- CUDA available:', torch.cuda.is_available())"

demo: setup ## play the whole story locally (IMPL=exercises: your solved exercises; TARGET=containers)
	@if [ "$(TARGET)" = containers ]; then scripts/compose.sh up && scripts/compose.sh story; \
	else $(BIN)/mlops-lab demo $(if $(IMPL),--impl $(IMPL)) $(if $(STRICT),--strict); fi

test: setup ## run every test: unit, system (real MLflow, uvicorn, locust), e2e (demo, docs); the 15 slowest
	@$(BIN)/pytest --durations=15 $(PYTEST_ARGS)

test-fast: setup ## the unit tests only: no servers, no network (about a minute): a maintainer's loop
	@$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

bench: setup ## benchmarks -> var/bench/{serving,router,canary,drift,labs,containers}.{json,md} (~20 min)
	@$(BIN)/python -m mlops_lab.bench.serving
	@$(BIN)/python -m mlops_lab.bench.router
	@$(BIN)/python -m mlops_lab.bench.canary
	@$(BIN)/python -m mlops_lab.bench.drift
	@$(BIN)/python -m mlops_lab.bench.labs
	@$(BIN)/python -m mlops_lab.bench.containers

# Both docs targets first execute the notebooks whose executed copy (var/notebooks/) is stale
# (about 25 s for both; nothing when up to date): the site shows them with their outputs.
docs: setup ## build the docs site (strict) into var/site, notebooks executed (var/notebooks)
	@$(BIN)/python scripts/notebooks.py
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet && echo "docs: var/site/index.html"

docs-serve: setup ## serve the docs site on http://127.0.0.1:8080 with live reload
	@$(BIN)/python scripts/notebooks.py
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8080

notebooks: setup ## open JupyterLab on notebooks/ (the lab walkthroughs), on 127.0.0.1 only
	@$(BIN)/jupyter lab --notebook-dir notebooks --ip 127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup ## ruff, mypy, import-linter (the layers in pyproject.toml)
	@$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports --no-cache

fmt: setup ## format the code
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .

lock: ## re-resolve requirements/main.in into requirements/lock.txt, and the image's runtime.txt from it
	@$(BIN)/uv pip compile --quiet --python-version 3.11 requirements/main.in -o requirements/lock.txt
	@$(BIN)/uv pip compile --quiet --python-version 3.11 requirements/runtime.in -c requirements/lock.txt -o requirements/runtime.txt

up: setup ## start the local system (MLflow, servers, router, monitor, controller, Prometheus)
	@$(BIN)/mlops-lab up

down: ## stop every local process
	@[ ! -x $(BIN)/mlops-lab ] || $(BIN)/mlops-lab down

status: setup ## what runs where
	@$(BIN)/mlops-lab status

lab-%: setup ## grade lab N up to your first exercise not done (ALL=1: every one; IMPL=reference)
	@$(BIN)/mlops-lab lab check $* $(if $(IMPL),--impl $(IMPL)) $(if $(ALL),--all)

hint-%: setup ## one more hint for the first failing exercise of lab N
	@$(BIN)/mlops-lab lab hint $*

watch-%: setup ## re-grade lab N on every save
	@$(BIN)/mlops-lab lab watch $* $(if $(IMPL),--impl $(IMPL))

scenarios: setup ## run every lab scenario on the reference (CI does; about 9 min)
	@$(BIN)/mlops-lab lab scenario all

scenario: setup ## break it on purpose: S=lab1/corrupt-model [IMPL=exercises [STRICT=1]] [TARGET=kind]; S=containers/...
	@if [ -z "$(S)" ]; then $(BIN)/mlops-lab lab scenario list; exit 2; fi
	@if [ "$(TARGET)" = kind ]; then scripts/cluster.sh scenario $(S); \
	elif [ -n "$(filter containers/%,$(S))" ] || [ "$(TARGET)" = containers ]; then \
	  scripts/compose.sh up && scripts/compose.sh scenario $(S); \
	else $(BIN)/mlops-lab lab scenario $(S) $(if $(IMPL),--impl $(IMPL)) $(if $(STRICT),--strict); fi

docker: ## a running Docker engine: installs Debian's docker.io and starts dockerd where none runs (root, Linux)
	@scripts/docker.sh

image: setup ## build the images here (a Debian base where no registry answers; wheels from the lock)
	@scripts/docker.sh && scripts/image.sh

compose-up: setup ## the whole system as containers (reference/compose): MLflow, Postgres, servers, router, ...
	@scripts/compose.sh up

compose-down: ## stop and remove the containers, their networks and volumes
	@scripts/compose.sh down

# The cluster path (docs/cluster.md). cluster-up checks docker, kind and kubectl before anything
# else (one line and exit 2 when one is missing), so it does not run setup first.
cluster-up: ## kind cluster + image + manifests + v1 trained in the cluster; prints the URLs
	@scripts/cluster.sh up

cluster-test: setup ## the story and the kind scenarios against the cluster
	@scripts/cluster.sh test

cluster-down: ## delete the kind cluster and everything in it
	@scripts/cluster.sh down

clean: down ## remove runtime state (var/) and caches; keeps .venv
	@rm -rf var .pytest_cache .mypy_cache .ruff_cache
