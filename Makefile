# MetaRec Studio. `make run` = set up + start the app; `make test` = set up + lint + whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 8501

.PHONY: run test lint venv dev-deps chromium screenshots bench sample-model clean

# torch goes in first, pinned, so that nothing installed after it can swap in a CUDA build.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-deps: $(VENV)/.dev-installed

run: venv
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

# Debian's Chromium for the browser tests (Playwright's own browser download does not work here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Debian chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

lint: dev-deps
	$(PY) -m ruff check .

test: dev-deps chromium lint
	$(PY) -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

screenshots: dev-deps chromium
	$(PY) -m pytest -q tests/e2e --screenshots docs/screenshots

# Accuracy (all configurations whose data exist), speed, playground and new-item page latency
# -> bench/out/.
bench: venv
	$(PY) bench/accuracy.py --out bench/out
	$(PY) bench/speed.py --data ../shared/datasets/ml-100k/u.data --items ../shared/datasets/ml-100k/u.item --json bench/out/speed.json
	$(PY) bench/playground_latency.py --json bench/out/playground_latency.json
	$(PY) bench/item_latency.py --saved sample_data/item_models --json bench/out/item_latency.json

# The small pre-trained checkpoint the app opens with, and the new-item page's models of the
# sample (tests/core/test_sample_model.py and test_sample_item_models.py check they still load
# and match the sample data; regenerate after changing the models).
sample-model: venv
	$(PY) -m metarec_core train sample_data/ratings.csv --items sample_data/items.csv --out sample_data/model.pt --seed 0 --steps 300
	$(PY) -m metarec_core train sample_data/ratings.csv --items sample_data/items.csv --cold items --new-item-page --seed 0 --out sample_data/item_models

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
