# Single entry point. `make test` is what CI runs (.ci/run), `make demo` runs the product.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test lint typecheck pytest demo bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# pytest exits 5 when it collected nothing; make treats that as the failure it is.
pytest: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(BIN)/.installed
	$(BIN)/python -m gateway.demo

bench: $(BIN)/.installed
	$(BIN)/python -m bench

bench-quick: $(BIN)/.installed
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
