# Two entry points, each doing its own set-up on a fresh clone:
#   make run   - install DEBA and run the main job
#   make test  - install DEBA with its test dependencies and the example plugin, run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deba-installed

.PHONY: install run test clean

$(STAMP): pyproject.toml plugins/deba-example-strategy/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e plugins/deba-example-strategy
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/deba profile resnet18
	$(VENV)/bin/deba plugins

test: install
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900 tests plugins/deba-example-strategy/tests

clean:
	rm -rf $(VENV) build dist *.egg-info runs
