# Two commands set everything up: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output

.PHONY: demo test lint typecheck pytest bench clean validator preview

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	DIGEST_ENVIRONMENT=development $(BIN)/python -m digest.demo --dir $(DEMO_DIR)

lint: $(DEVSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(DEVSTAMP)
	$(BIN)/mypy digest subscribers

# pytest's options: two worker processes (pytest-xdist) by default, as the suite's slowest tests
# mostly wait; `make pytest PYTEST_ARGS=` runs it serially, in one process.
PYTEST_ARGS ?= -n 2 --dist load

pytest: $(DEVSTAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	@for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# npm tools the render tests use (they install them on first use too): the official MJML
# validator in both major versions, axe-core and doiuse-email.
validator:
	npm install --prefix .cache/npm-mjml mjml@4.18.0 --no-audit --no-fund --loglevel=error
	npm install --prefix .cache/npm-mjml5 mjml@5.4.1 --no-audit --no-fund --loglevel=error
	npm install --prefix .cache/npm-axe axe-core@4 --no-audit --no-fund --loglevel=error
	npm install --prefix .cache/npm-doiuse doiuse-email@0.4 --no-audit --no-fund --loglevel=error

preview: $(STAMP)
	$(BIN)/digest preview $(if $(WEEK),--week $(WEEK)) --out $(DEMO_DIR)/preview.html

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
