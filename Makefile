# The Better Store backend. `make install` then `make test` is all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= dev
# The Pulumi Cloud stack: <org>/tbs/<stack> when PULUMI_ORG is set (CI sets it), else in your default org
# (`pulumi org set-default <org>`).
PROJECT := tbs
PULUMI_STACK = $(if $(PULUMI_ORG),$(PULUMI_ORG)/$(PROJECT)/$(STACK),$(STACK))
PACKAGE_LAYER ?= $(BIN)/python tools/package_layer.py
# Nobody answers `pulumi up`'s prompt in CI (GitHub sets CI=true); `up` still previews before it applies.
UP_FLAGS = $(if $(CI),--yes,)

CHAOS_ORDERS ?= 1000
CHAOS_SEED ?= 7

.PHONY: install unit test e2e lint dev demo chaos fuzz preview snapshots docs seed package preflight policy deploy \
	clean ops diagram bench browser

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt lambdas/requirements.txt
	@echo "Installing into $(VENV): the program, the Lambda dependencies and the dev tools (a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The fast tier: domain rules and use cases over in-memory fakes; no AWS, no database, no local cloud.
# Only the pytest plugin it uses is loaded (the others cost a second of start-up).
unit: install
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest tests/unit -p hypothesispytest

# The gate for every change, ≤ 90 s on 2 quiet cores: every tier but the local cloud's end-to-end runs.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/e2e --ignore=tests/chaos

# End to end over HTTP against the local cloud (one per xdist worker) and a 6-order chaos run; CI runs it
# after `make test`.
e2e: install
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/e2e tests/chaos

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# The local cloud: the same program on this machine (moto, embedded PostgreSQL, local gateway). Ctrl-C stops it.
# PORT=8080 fixes the gateway's port (default: any free one); one instance per checkout. FRESH=1 runs the
# program even if its last run could be replayed (docs/localcloud.md).
dev: install
	$(BIN)/python -m localcloud up --stack $(STACK) $(if $(PORT),--port $(PORT),) $(if $(FRESH),--fresh,)

# Headless Chromium and its driver from Debian's packages, for the state page's browser test (skipped,
# saying so, without them). Needs root or sudo: this prints the command when it cannot run it.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "run: sudo apt-get install chromium chromium-driver   (Debian/Ubuntu)"; exit 1; fi

# Chaos against a local cloud of its own: duplicated, shuffled webhooks, 20 % failing λ, a paused
# database, poison messages, then a DLQ redrive; prints the figures and fails unless 0 lost, 0 doubled.
chaos: install
	$(BIN)/python -m localcloud.chaos --orders $(CHAOS_ORDERS) --seed $(CHAOS_SEED)

# The storefront API fuzzed from docs/openapi.json against a local cloud, deeper than in `make test`.
fuzz: install
	FUZZ_EXAMPLES=200 $(BIN)/python -m pytest tests/e2e/test_api_fuzz.py

# The whole story against a running `make dev`.
demo: install
	$(BIN)/python -m localcloud.demo

# Offline preview: the resource tree of Pulumi.$(STACK).yaml, from the recording mocks (no CLI, no AWS).
preview: install
	$(BIN)/python -m tools.preview $(STACK)

# Rewrite the golden snapshots after a reviewed infra change.
snapshots: install
	$(BIN)/python -m tools.preview dev --write
	$(BIN)/python -m tools.preview prod --write

# docs/openapi.json and docs/events/*.json, generated from the code (a test fails when they are stale).
docs: install
	$(BIN)/python -m tools.export_docs

# Load data/products.json into a deployed stack's catalog and data/downloads/ into its downloads bucket
# (TABLE=<name> [BUCKET=<name>] for any other table and bucket).
seed: install
	$(BIN)/python -m tools.seed_catalog $(if $(TABLE),--table $(TABLE) $(if $(BUCKET),--bucket $(BUCKET)),--stack $(STACK))

# The dependency layer for Lambda (arm64, python3.13), byte-for-byte reproducible.
package: install
	$(PACKAGE_LAYER)

# Before anything is built: the Pulumi CLI, the login, the stack and its secrets, AWS credentials.
# One line per missing piece, saying what to run.
preflight: install
	$(BIN)/python -m tools.preflight --stack $(PULUMI_STACK)

# A real preview with the invariant policy pack enforced: the pull request check, and the gate of `deploy`.
policy: preflight
	$(PACKAGE_LAYER)
	pulumi preview --stack $(PULUMI_STACK) --policy-pack policy

# The gate above, then the update with the same pack (its own preview runs the per-resource rules again
# on what it is about to apply). Make stops at the first failure, so a failed gate never reaches `up`.
deploy: policy
	pulumi up --stack $(PULUMI_STACK) --policy-pack policy $(UP_FLAGS)

# Operator tooling (README "Operating"), e.g. make ops ARGS="--stack prod dlq list" or ARGS="--local dlq list".
ops: install
	$(BIN)/python -m tools.ops $(ARGS)

# docs/architecture.md (Mermaid) and docs/architecture.svg from the recorded resource graph (a test fails
# when they are stale). Graphviz renders the SVG; without it the tool says how to install it.
diagram: install
	$(BIN)/python -m tools.diagram --svg

# Performance figures, each next to its goal; fails when one is missed (several minutes, a million orders;
# not part of `make test`). `make bench WRITE=1` also rewrites docs/performance.md.
bench: install
	$(BIN)/python -m localcloud.bench $(if $(WRITE),--write)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
