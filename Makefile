# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP  := $(VENV)/.tbcim-installed
NPM_STAMP := node_modules/.tbcim-installed
RESULTS   := results

.PHONY: setup demo test lint bench clean

setup: $(PY_STAMP) $(NPM_STAMP)

# torch first: the pinned CPU wheel, so nothing pulls the CUDA build.
$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The pinned npm solc (compiler fallback) and anvil (external node for tests).
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Deploy the contracts to the embedded chain and run a smoke round (gas from receipts), price
# every ES's EDs with the g_e just measured on that chain, then run BCFL on chain: PyTorch
# clients on digits, every update through the aggregator, attackers and a failed ES.
demo: setup
	mkdir -p $(RESULTS)
	$(BIN)/python scripts/deploy_local.py --json $(RESULTS)/deploy.json
	$(BIN)/tbcim pricing --seed 0 --gas-ledger $(RESULTS)/deploy.json \
		--json $(RESULTS)/pricing.json --png $(RESULTS)/pricing.png
	$(BIN)/tbcim fl run --config configs/fl/demo.toml --out $(RESULTS)/fl-demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules $(RESULTS) .tbcim-cache
