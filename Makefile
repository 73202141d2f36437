# Two commands on a fresh clone: `make run` and `make test`. Everything they need
# (virtualenv, Python packages, Kafka jars from Maven Central) is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA := infra/kafka/kafka
KAFKA_PORT ?= 9092
DATA_DIR ?= ./data
PORT ?= 6333
ARGS ?=

.PHONY: install jars run stop test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

jars:
	$(KAFKA) fetch

run: install jars
	KAFKA_PORT=$(KAFKA_PORT) $(KAFKA) start
	@echo "pointlog: serving Qdrant's REST API on http://127.0.0.1:$(PORT) (data in $(DATA_DIR), Ctrl-C to stop)"
	$(VENV)/bin/pointlog serve --bootstrap 127.0.0.1:$(KAFKA_PORT) --data-dir $(DATA_DIR) --port $(PORT)

stop:
	KAFKA_PORT=$(KAFKA_PORT) $(KAFKA) stop

test: install jars
	$(PY) -m pytest -q tests

bench: install jars
	$(PY) -m tests.benchmarks.run $(ARGS)

clean:
	rm -rf $(VENV) $(DATA_DIR)
