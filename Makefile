# The README's two commands: `make run` and `make test` (`make test-fast`: the loop without services). Each creates
# .venv and installs only when needed: `make run` what running needs, `make test` the test extras on top.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check
# Re-install whenever pyproject.toml changes; otherwise a re-run skips straight to the work.
HASH        := $(shell sha1sum pyproject.toml 2>/dev/null | cut -c1-12)
STAMP_RUN   := $(VENV)/.installed-run-$(HASH)
STAMP_MYSQL := $(VENV)/.installed-mysql-$(HASH)
STAMP_DEV   := $(VENV)/.installed-dev-$(HASH)
# The [mysql] extra (PyMySQL, connectorx, pyarrow: ~350 MB) only where tables or Dagster's storage are on MySQL.
WANT_MYSQL  := $(if $(strip $(GAMEREC_MYSQL_URL)$(DAGSTER_MYSQL_HOST)),$(STAMP_MYSQL))

export GAMEREC_HOME ?= $(CURDIR)/.gamerec
export DAGSTER_HOME ?= $(GAMEREC_HOME)/dagster_home
export WANDB_MODE   ?= offline
# Dagster 1.13 calls `dagster asset materialize` and `dagster dev` superseded by `dg` (another package) at every call;
# they are the documented commands of this release, so the notice is noise here.
export PYTHONWARNINGS ?= ignore:Function `asset_materialize_command` is superseded,ignore:Function `dev_command` is superseded

# One line per install step with its time ("gamerec: installing the project into .venv ... 74 s"); pip's own output
# goes to $(GAMEREC_HOME)/logs/install.log, and its last lines to the screen only when it fails.
INSTALL_LOG := $(GAMEREC_HOME)/logs/install.log
comma := ,
define step
	@mkdir -p $(dir $(INSTALL_LOG)); t0=$$(date +%s); printf 'gamerec: %s ... ' "$(1)"; \
	if $(2) >>$(INSTALL_LOG) 2>&1; then echo "$$(( $$(date +%s) - t0 )) s"; \
	else echo "failed; the last lines of $(INSTALL_LOG):"; tail -n 15 $(INSTALL_LOG); exit 1; fi
endef

.PHONY: run test test-fast install install-dev browser prometheus lint materialize materialize-stale serve dagster-home clean check-run

$(STAMP_RUN): pyproject.toml
	$(call step,creating $(VENV),$(SHELL) -c 'test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)')
	$(call step,upgrading pip,$(PIP) --upgrade pip)
	$(call step,installing the project into $(VENV),$(PIP) -e .)
	@rm -f $(VENV)/.installed-run-* && touch $@

$(STAMP_MYSQL): $(STAMP_RUN)
	$(call step,installing the MySQL extra (GAMEREC_MYSQL_URL or DAGSTER_MYSQL_HOST is set),$(PIP) -e '.[mysql]')
	@rm -f $(VENV)/.installed-mysql-* && touch $@

$(STAMP_DEV): $(STAMP_RUN)
	$(call step,installing the test extras and the MySQL extra,$(PIP) -e '.[mysql$(comma)dev]')
	@rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-mysql-* && touch $@ $(STAMP_MYSQL)

install: $(STAMP_RUN) $(WANT_MYSQL)
	@:  # (not "Nothing to be done" when installed)
install-dev: $(STAMP_DEV)
	@:

# Headless Chromium for the web-page test: Debian's package (Playwright's own browser download is not reachable).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "WARNING: could not install chromium"; }

# Debian's prometheus (prometheus + promtool) for the dashboard and alert-rule tests (tests/deploy); its own
# service is stopped and disabled, the tests start theirs on a free port.
prometheus:
	@bash scripts/install-prometheus.sh

# Every test: the core, the graph, and the integration tests (MariaDB, moto's S3, RabbitMQ + Celery workers,
# server processes, headless Chromium, Prometheus). `.ci/run` runs this one.
test: install-dev browser prometheus
	$(BIN)/python -m pytest $(ARGS)

# The edit-run loop (under 3 minutes on 2 cores): everything but the tests marked `integration` (tests/support/
# markers.py marks every test that uses a service fixture); no browser, no service needed. ARGS='-x tests/...'.
test-fast: install-dev
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

lint: install-dev
	$(BIN)/ruff check gamerec_assets gamerec_api tests bench scripts
	$(BIN)/ruff format --check gamerec_assets gamerec_api tests bench scripts

# The instance directory with the repo's dagster.yaml (SQLite there unless DAGSTER_MYSQL_HOST is set; telemetry
# off), so Dagster neither warns about a missing file nor prints its telemetry banner.
dagster-home:
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Every asset, fresh or not (what the daily schedule does): `dagster asset materialize --select '*'`, through
# materialize_stale for its settings check (one line, exit 2) and its progress (one line per step; Dagster's own
# output in $(GAMEREC_HOME)/logs/materialize.log). ARGS='-- -c file.yaml': run config.
materialize: install dagster-home
	@$(BIN)/python -m gamerec_assets.materialize_stale --all --command 'make materialize' $(ARGS)

# Only what Dagster calls missing or stale, and what is downstream of it. ARGS=--dry-run: the plan and why;
# ARGS='-- -c file.yaml': run config for the run it starts.
materialize-stale: install dagster-home
	@$(BIN)/python -m gamerec_assets.materialize_stale $(ARGS)

serve: install dagster-home
	@bash scripts/serve.sh

# `make run` checks its settings and both ports before building, so a busy port does not wait for the build.
check-run: install
	@$(BIN)/python -m gamerec_assets.settings --check --ports --command 'make run'

run: check-run materialize-stale serve

clean:
	rm -rf $(GAMEREC_HOME)

# One Celery worker of the scale location, in the foreground, with this environment's settings (the same on every
# machine: GAMEREC_MYSQL_URL, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL, DAGSTER_MYSQL_*, GAMEREC_THREADS...).
# GAMEREC_CELERY_BROKER defaults to the local RabbitMQ; celery worker options in WORKER_ARGS, e.g. WORKER_ARGS='-c 2'.
.PHONY: worker
worker: install dagster-home
	PATH="$(CURDIR)/$(BIN):$$PATH" GAMEREC_CELERY_BROKER="$${GAMEREC_CELERY_BROKER:-pyamqp://guest:guest@127.0.0.1:5672//}" \
	  $(BIN)/python -m gamerec_assets.scale.worker $(WORKER_ARGS)

# The Docker image (README: Docker), tagged $(IMAGE). Without BASE_IMAGE: .ci/docker.sh's offline path (the daemon,
# the debootstrap'd Debian base, the wheelhouse from the configured index, then PIP_NO_INDEX=1); with
# BASE_IMAGE=python:3.11-slim (a reachable registry): that base and the package index (PIP_INDEX_URL: a mirror).
IMAGE ?= gamerec
.PHONY: image
image:
ifdef BASE_IMAGE
	GAMEREC_IMAGE=$(IMAGE) GAMEREC_DOCKER_BASE=$(BASE_IMAGE) GAMEREC_PIP_INDEX_URL=$(PIP_INDEX_URL) .ci/docker.sh build
else
	GAMEREC_IMAGE=$(IMAGE) .ci/docker.sh prepare build
endif
