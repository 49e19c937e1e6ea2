# The Better Store backend. `make install` then `make test` is all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= dev

CHAOS_ORDERS ?= 1000
CHAOS_SEED ?= 7

.PHONY: install unit test lint dev demo chaos fuzz preview snapshots docs seed package deploy clean ops

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt lambdas/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The fast tier: domain rules and use cases over in-memory fakes; no AWS, no database, no local cloud.
# Only the pytest plugin it uses is loaded (the others cost a second of start-up).
unit: install
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest tests/unit -p hypothesispytest

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# The local cloud: the same program on this machine (moto, embedded PostgreSQL, local gateway). Ctrl-C stops it.
dev: install
	$(BIN)/python -m localcloud up --stack $(STACK)

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

# Load data/products.json into a deployed stack's catalog (TABLE=<name> for any other table).
seed: install
	$(BIN)/python -m tools.seed_catalog $(if $(TABLE),--table $(TABLE),--stack $(STACK))

# The dependency layer for Lambda (arm64, python3.13), byte-for-byte reproducible.
package: install
	$(BIN)/python tools/package_layer.py

deploy: package
	pulumi up --stack $(STACK)

# Operator tooling (README "Operating"), e.g. make ops ARGS="--stack prod dlq list" or ARGS="--local dlq list".
ops: install
	$(BIN)/python -m tools.ops $(ARGS)

# docs/architecture.md (Mermaid) and docs/architecture.svg from the recorded resource graph (a test fails
# when they are stale). Graphviz renders the SVG: installed from Debian when missing.
diagram: install
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz) \
		|| (sudo apt-get update -qq && sudo apt-get install -y -qq graphviz)
	$(BIN)/python -m tools.diagram --svg

# The invariant policy pack on a real preview (needs the Pulumi CLI and credentials, as CI has).
policy: package
	pulumi preview --stack $(STACK) --policy-pack policy

# Performance figures (a few minutes; not part of `make test`): printed and written to docs/performance.md.
bench: install
	$(BIN)/python -m tools.bench

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
