# Two commands a newcomer needs: `make demo` and `make test`. Each makes its own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# setuptools warns on every editable install of a flat layout (core/, runtime/… at the top, as designed):
# the install step only, never the tests or the demo, runs with Python warnings off
QUIET_BUILD := PYTHONWARNINGS=ignore

.PHONY: demo test lint check install services-up services-down bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Everything the demo needs: the embedded runtime only.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(QUIET_BUILD) $(BIN)/python -m pip install --quiet -e .
	@touch $@

# Everything the tests need: every extra (Kafka, Redis, Telegram, RocksDB tables, the compiled index) and the dev
# tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(QUIET_BUILD) $(BIN)/python -m pip install --quiet -e '.[kafka,redis,telegram,rocksdb,fast,dev]'
	$(BIN)/python -c "import core.index; core.index.warm_up()"  # compile the index's kernel once, here
	@touch $@ $(VENV)/.demo-installed

install: $(VENV)/.dev-installed

demo: $(VENV)/.demo-installed
	$(BIN)/vigie demo

# Starts Redis and Kafka when absent (KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set), runs lint and
# every test, stops what it started.
test: $(VENV)/.dev-installed lint
	bash deploy/local/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

services-up:
	bash deploy/local/services.sh up

services-down:
	bash deploy/local/services.sh down

# The benchmarks, full size (several minutes; the tests run their --quick forms): the diff, matching against
# 10k-1M subscriptions, and the pipeline on both runtimes through a real Kafka and Redis (started when absent).
bench: $(VENV)/.dev-installed
	$(BIN)/python bench/diff.py
	$(BIN)/python bench/match.py
	bash deploy/local/with-services.sh $(BIN)/python bench/pipeline.py --events 15463 --every 100

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
