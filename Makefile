# Workflow Streams demo. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-print-directory

COMPOSE ?= docker compose
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
N ?= 20
TEMPORAL_UI_PORT ?= 8233

.PHONY: help
help:  ## Show this help
	@echo "Usage: make TARGET   (start with: make up)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- local environment, for development only (test, lint, bench, e2e); the stack
# and the chaos targets need only Docker, Compose and make

# The venv is rebuilt when a lock changes. Python 3.12+ is required: 3.11 can
# hang leaving `async with WorkflowStreamClient` (CPython issue 86296).
$(VENV)/.installed: requirements/dev.txt requirements/base.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
	  { echo "error: $(PYTHON) is $$($(PYTHON) --version); Python 3.12+ is needed (set PYTHON=python3.13)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@# Use uv if it works here, else install it into the venv with pip.
	@if uv --version >/dev/null 2>&1; then echo uv > $(VENV)/.uv; \
	  else $(VENV)/bin/python -m pip install -q uv && echo $(VENV)/bin/uv > $(VENV)/.uv; fi
	$$(cat $(VENV)/.uv) pip sync -q --python $(PY) --require-hashes requirements/dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed  ## Create .venv with the locked test and lint tools

.PHONY: lock
lock: venv  ## Re-lock requirements/*.txt (hashed) from requirements/*.in
	for f in base chaos dev; do $$(cat $(VENV)/.uv) pip compile -q --universal --python-version 3.12 \
	  --generate-hashes --no-header requirements/$$f.in -o requirements/$$f.txt; done

.PHONY: lint
lint: venv  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: test
test: lint tls-tools  ## Lint, then every test against a real Temporal dev server (no Docker)
	@# Two workers, each with its own dev server; a file stays on one worker, so
	@# a module's fixtures (the TLS front doors, say) are set up once.
	$(PY) -m pytest -m "not e2e" -n 2 --dist loadfile

.PHONY: bench
bench: venv  ## How far one stream goes, beside the library's defaults (~12 min; BENCH_SCALE=0.1 for a look)
	$(PY) -m bench

# --- the stack

.PHONY: up
up:  ## Build and start the stack, then print where to look
	$(COMPOSE) up --detach --build
	@$(MAKE) wait-healthy
	@echo
	@echo "Stack is up. Temporal Web UI: http://127.0.0.1:$(TEMPORAL_UI_PORT)"
	@echo "Live dashboard: http://$$($(COMPOSE) port edge 8000)"
	@echo "Next:"
	@echo "  docker compose logs -f        every scenario's output"
	@echo "  make chaos-subscriber         kill the subscriber mid-stream and prove the resume"
	@echo "  make assistant / chaos-llm    ask the model again / kill its worker mid-answer"
	@echo "  make ps                       what is running and what has exited"
	@echo "  make down / make clean        stop (keep data) / stop and delete data"

.PHONY: wait-healthy
wait-healthy:
	@for _ in $$(seq 90); do \
	  [ "$$($(COMPOSE) ps --format '{{.Health}}' temporal)" = healthy ] && exit 0; sleep 1; done; \
	  echo "error: temporal is not healthy after 90 s; see: $(COMPOSE) logs temporal"; exit 1

.PHONY: down
down:  ## Stop the stack, keep its volumes (history and ledger)
	$(COMPOSE) down

.PHONY: clean
clean:  ## Stop the stack and delete its volumes
	$(COMPOSE) down --volumes

.PHONY: logs
logs:  ## Follow every service's logs
	$(COMPOSE) logs --follow

.PHONY: ps
ps:  ## Every container, with exit codes of the one-shot ones
	$(COMPOSE) ps --all

# Re-runs of the one-shot scenarios, attached so their output shows here.
rerun = $(COMPOSE) up --no-deps --force-recreate --exit-code-from $(1) $(1)

.PHONY: order-starter
order-starter:  ## Run scenario 1 again: an order, two topics
	$(call rerun,$@)

.PHONY: publisher
publisher:  ## Run scenario 3 again: an external publisher into a hub
	$(call rerun,$@)

.PHONY: ticker-fast
ticker-fast:  ## Run scenario 4's fast subscriber again
	$(call rerun,$@)

.PHONY: ticker-slow
ticker-slow:  ## Run scenario 4's slow subscriber again
	$(call rerun,$@)

.PHONY: assistant
assistant:  ## Run scenario 5 again: ask the model a question (ASSISTANT_PROMPT) and follow the answer
	$(call rerun,$@)

.PHONY: llm-worker
llm-worker:  ## Re-create the llm-worker (picks up code changes and LLM_* settings)
	$(COMPOSE) up --detach --build --no-deps --force-recreate llm-worker

.PHONY: web
web:  ## Re-create the dashboard's replicas (picks up code changes); prints its address
	$(COMPOSE) up --detach --build --no-deps --force-recreate --wait web
	@# New containers, new addresses: the edge reads them again.
	$(COMPOSE) exec edge sh /etc/nginx/edge/start.sh reload
	@echo "Dashboard: http://$$($(COMPOSE) port edge 8000)"

.PHONY: ticker
ticker:  ## Run scenario 4 again: both ticker subscribers, side by side
	$(COMPOSE) up --no-deps --force-recreate ticker-fast ticker-slow
	@for s in ticker-fast ticker-slow; do \
	  code=$$(docker inspect --format '{{.State.ExitCode}}' $$($(COMPOSE) ps --all --quiet $$s)); \
	  [ "$$code" = 0 ] || { echo "error: $$s exited $$code"; exit 1; }; done

# --- faults: the chaos tools run in the `chaos` service, a container of the
# stack's image started only here (never by `make up`), so they need nothing
# on this machine but Docker, Compose and make. It exits 0 PASS, 1 FAIL,
# 2 refused (bad input, or the stack is not up).
chaos = $(COMPOSE) run --rm chaos

# Refuse before `docker compose run` creates (or even builds) anything.
.PHONY: stack-running
stack-running:
	@up=$$($(COMPOSE) ps --status running --services); for s in temporal worker subscriber; do \
	  grep -qx "$$s" <<< "$$up" || { echo "chaos: $$s is not running. Start the stack with" \
	    "\`make up\` (and see \`make ps\`)." >&2; exit 2; }; done

.PHONY: chaos-subscriber
chaos-subscriber: stack-running  ## SIGKILL the subscriber mid-stream, restart it, audit its ledger
	@$(chaos) subscriber

.PHONY: soak-subscriber
soak-subscriber: stack-running  ## N SIGKILLs at random instants (N=20; SEED=S replays a run)
	@$(chaos) soak-subscriber "$(N)"

.PHONY: chaos-worker
chaos-worker: stack-running  ## SIGKILL the worker while an order is charging; the order must complete
	@$(chaos) worker

.PHONY: chaos-llm
chaos-llm: stack-running  ## SIGKILL the llm-worker mid-answer; the shown text must equal the result
	@$(chaos) llm

.PHONY: chaos-temporal
chaos-temporal: stack-running  ## Restart Temporal mid-stream; every service must reconnect by itself
	@$(chaos) temporal

.PHONY: reset-subscriber
reset-subscriber:  ## Discard the subscriber's ledger and its lock; it starts over on the next run
	$(COMPOSE) stop subscriber
	$(COMPOSE) run --rm --no-deps --entrypoint rm subscriber -f \
	  /data/events.jsonl /data/events.jsonl.lock /data/events.jsonl.compacting
	$(COMPOSE) up --detach subscriber

# The browser tests drive Debian's Chromium; nothing downloads a browser.
.PHONY: browser
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "error: the browser tests need Debian's chromium; run: sudo apt-get install chromium"; \
	  exit 1; fi; }

# The cluster tests put a TLS front door (nginx) with a private CA (openssl)
# in front of the dev server: Debian's packages, installed when missing.
.PHONY: tls-tools
tls-tools:
	@{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null && command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nginx-light openssl; \
	  else echo "error: the cluster tests need nginx and openssl; run: sudo apt-get install nginx-light openssl"; \
	  exit 1; fi; }

.PHONY: e2e
e2e: venv browser tls-tools  ## The whole stack on Docker, in its own compose project, asserted
	$(PY) -m pytest -m e2e tests/e2e
