# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP  := $(VENV)/.tbcim-installed
NPM_STAMP := node_modules/.tbcim-installed
RESULTS   := results

.PHONY: setup demo test figures lint bench clean

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

# The market end to end on the embedded chain (TBCIM section II-A): 5 ESs x 3-10 EDs on digits,
# RANet-exact, two consecutive tasks, each published with its reward in escrow, priced at the
# Stackelberg equilibrium (g_e measured on this chain), auctioned with sealed bids, trained by
# the winners' EDs through the aggregator contract, attested and settled to the wei.
DEMO_RUN := $(RESULTS)/market-demo
demo: setup
	rm -rf $(DEMO_RUN)
	$(BIN)/tbcim market run --config configs/market/default.toml --out $(DEMO_RUN)
	$(BIN)/tbcim market verify $(DEMO_RUN)

# Two test workers (one per core); the Flower tests share one of them, hence loadgroup.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Every figure of both papers from fresh runs, each claim checked (docs/figures.md); the quick
# sizes. The full sizes: drop --quick (hours; docs/figures.md gives the time).
FIGURES_DIR := $(RESULTS)/figures
figures: setup
	$(BIN)/tbcim figures --out $(FIGURES_DIR) --quick

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules $(RESULTS) .tbcim-cache
