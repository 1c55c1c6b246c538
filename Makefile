# Each target bootstraps .venv (python3.11 -m venv + pip install -e .[dev,vision,nlp,report,sweep,docs]) when missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-aees

.PHONY: demo test test-fast docs bench lint format clean tables plots report

RESULTS ?= results
REPORT_DIR ?= reports
# Two pytest workers (pytest-xdist), one test module per worker: the suite is mostly
# single-threaded subprocess and small-model work, so the two cores of CI both stay busy
# (one intra-op thread per worker: two workers x two threads would oversubscribe them).
PYTEST_ARGS ?= -n 2 --dist loadfile

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,vision,nlp,report,sweep,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aees demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts experiments
	$(BIN)/ruff format --check src tests bench scripts experiments
	$(MAKE) docs
	OMP_NUM_THREADS=1 $(BIN)/pytest $(PYTEST_ARGS)

# The fast loop: every test not marked slow (no torchrun, Ray, venv build, SIGKILL or demo subprocess).
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/pytest $(PYTEST_ARGS) -m "not slow"

# The documentation site (mkdocs.yml; Material theme, API pages from the docstrings) into the
# git-ignored site/. --strict: a broken link, a missing page or a symbol the API page cannot find
# fails the build, and with it `make test` (and so .ci/run).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# `make bench`: a short run with progress lines (about 2 minutes on a 2-core CPU; its timing
# targets may read NOISY on a loaded machine: not a verdict). `make bench BENCH=full`: the
# settings of bench/README.md (CPU: 8 minutes and more; GPU: the numbers we report).
BENCH ?= short
BENCH_FLAGS := $(if $(filter full,$(BENCH)),,--short)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py $(BENCH_FLAGS)
	$(BIN)/python bench/epoch.py $(BENCH_FLAGS)

# Tables / figures / the HTML report from the result JSON under $(RESULTS).
tables: $(STAMP)
	@for s in scripts/tables/make_*.py; do f=$$(basename $$s .py); \
	  $(BIN)/python $$s --runs-root $(RESULTS) --out-dir $(REPORT_DIR)/tables/$${f#make_} \
	  || echo "make tables: $$f: nothing written"; done

plots: $(STAMP)
	@status=0; for s in scripts/plots/*_plots.py; do \
	  $(BIN)/python $$s --runs-root $(RESULTS) \
	    --out-dir $(REPORT_DIR)/figures/$$(basename $$s _plots.py) || status=1; done; exit $$status

report: $(STAMP)
	$(BIN)/aees report $(RESULTS) --out $(REPORT_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts experiments

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts experiments
	$(BIN)/ruff check --fix src tests bench scripts experiments

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache .hypothesis
