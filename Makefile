# The README's two commands: `make run` and `make test`. Each creates .venv and installs only when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install whenever pyproject.toml changes; otherwise a re-run skips straight to the work.
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml 2>/dev/null | cut -c1-12)

export GAMEREC_HOME ?= $(CURDIR)/.gamerec
export DAGSTER_HOME ?= $(GAMEREC_HOME)/dagster_home
export WANDB_MODE   ?= offline

.PHONY: run test install browser lint materialize serve clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Headless Chromium for the web-page test: Debian's package (Playwright's own browser download is not reachable).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "WARNING: could not install chromium"; }

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check gamerec_assets gamerec_api tests bench scripts
	$(BIN)/ruff format --check gamerec_assets gamerec_api tests bench scripts

materialize: install
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster asset materialize -m gamerec_assets.definitions --select '*'

serve: install
	@bash scripts/serve.sh

run: materialize serve

clean:
	rm -rf $(GAMEREC_HOME)
