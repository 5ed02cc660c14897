# curation: make install | make demo | make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test schemas bench clean

install: $(STAMP)

# torch first, pinned to the CPU build that lies on local disk: any other torch request
# would download gigabytes of CUDA. Everything after it sees torch already satisfied.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	$(BIN)/git-annex version >/dev/null
	touch $(STAMP)

demo: install
	rm -rf demo-output
	$(BIN)/curate demo demo-output

# two workers, a test file per worker (its module fixtures are built once): most tests wait
# on git, git-annex and curate subprocesses, so two workers fill two cores
PYTEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

schemas: install
	$(BIN)/curate schemas export schemas

bench: install
	$(BIN)/python benchmarks/ingest.py --sizes 1

clean:
	rm -rf $(VENV) demo-output .pytest_cache
