VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test demo bench clean

$(BIN)/etl:
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'

install: $(BIN)/etl

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: install
	$(BIN)/pytest

demo: install
	$(BIN)/etl demo

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf build *.egg-info .mypy_cache .ruff_cache .pytest_cache
