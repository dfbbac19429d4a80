# Two entry points, each doing its own set-up on a fresh clone:
#   make run   - install DEBA (with the example extras) and run the main job, `deba run`
#   make test  - install DEBA with its test dependencies and the example plugin, run the tests
#   make test-fast - the same install, then every test not marked `slow` (no torchrun, BERT,
#                    wheel build, study or subprocess training runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.deba-run
TEST_STAMP := $(VENV)/.deba-test
DEPS := pyproject.toml plugins/deba-example-strategy/pyproject.toml

.PHONY: install run test test-fast clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): $(DEPS) | $(PY)
	$(PY) -m pip install -q -e '.[examples]'
	touch $@

$(TEST_STAMP): $(DEPS) | $(PY)
	$(PY) -m pip install -q -e '.[dev,examples]' -e plugins/deba-example-strategy
	touch $@

install: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/deba run $(ARGS)

TEST_PATHS := tests plugins/deba-example-strategy/tests

# The dev extra pins setuptools>=77 and build: the wheel test builds with --no-build-isolation.
test: $(TEST_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900 $(TEST_PATHS)

test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900 -m "not slow" $(TEST_PATHS)

clean:
	rm -rf $(VENV) build dist *.egg-info runs
