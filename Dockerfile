# One image for every process: the Dagster webserver, the Dagster daemon, the API, a Celery worker (README: Docker).
#   docker build -t gamerec .                                         # online: python:3.11-slim and PyPI
#   docker build -t gamerec --build-arg PIP_INDEX_URL=https://mirror.example/simple \
#                --build-arg BASE_IMAGE=registry.example/python:3.11-slim .    # behind a registry / index mirror
#   docker build -t gamerec --build-arg BASE_IMAGE=gamerec-base:bookworm-<hash> --build-arg PIP_NO_INDEX=1 .
#                                                      # offline: wheels in docker/wheelhouse/ (.ci/docker.sh makes both)
#   docker run --rm -v gamerec-data:/data gamerec materialize          # every asset, onto the volume
#   docker run -d -p 8000:8000 -v gamerec-data:/data gamerec api       # Litestar service
# Configure with the README's Configuration table (GAMEREC_MYSQL_URL, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL,
# DAGSTER_MYSQL_*, ...); without them every state lives on the /data volume.
#
# BASE_IMAGE: any Debian-like image with Python >= 3.11 and its venv module (python:3.11-slim, or a debootstrap'd
# Debian with python3 + python3-venv + libgomp1). Both stages start from it, so the venv's interpreter is the same
# one. implicit's ALS/BPR need the OpenMP runtime (libgomp.so.1): a base without it gets Debian's libgomp1 (online).
ARG BASE_IMAGE=python:3.11-slim
# The build stage's base: the same image, or one with binutils added (strip; .ci/docker.sh's gamerec-build:bookworm),
# which must keep the base's Python at the same path (the venv links to it).
ARG BUILD_BASE_IMAGE=${BASE_IMAGE}

# ---- build: the venv, from the wheelhouse and/or the index; the compiled kernels' cache warmed ----------------------
FROM ${BUILD_BASE_IMAGE} AS build
# A folder of the build context holding wheels (any subset: pip takes the rest from the index, unless
# PIP_NO_INDEX=1); the default one is empty but for its README.
ARG WHEELHOUSE=docker/wheelhouse
# The package index (a mirror) and its extra index; empty: PyPI. PIP_NO_INDEX=1: the wheelhouse only (offline).
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ARG PIP_NO_INDEX=
# numba compiles for this CPU name; `generic` (x86-64 baseline) makes the build-time cache valid on any x86-64
# host. Empty: the build machine's CPU (faster code; a different CPU recompiles at first use, 1-3 s per kernel).
ARG NUMBA_CPU_NAME=generic
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    WANDB_MODE=offline \
    NUMBA_CACHE_DIR=/opt/gamerec/numba-cache \
    VIRTUAL_ENV=/opt/gamerec \
    PATH=/opt/gamerec/bin:$PATH

COPY ${WHEELHOUSE}/ /wheels/
COPY docker/pip-install.sh /usr/local/bin/gamerec-pip-install
COPY docker/ensure-libgomp.sh /usr/local/bin/gamerec-ensure-libgomp
RUN sh /usr/local/bin/gamerec-ensure-libgomp \
 && python3 -m venv /opt/gamerec \
 && sh /usr/local/bin/gamerec-pip-install "setuptools>=77" wheel

# The dependencies first, from pyproject.toml alone (an empty project stands in for the sources), so that a change
# of the code or the README does not reinstall them; no build isolation: the project's build backend is the venv's
# setuptools above (from the wheelhouse offline); with the [mysql] extra, since the image's deployments keep tables on
# MariaDB (GAMEREC_MYSQL_URL). Then the venv slimmed (docker/slim_venv.py: test suites, sources,
# unused optional modules, symbol tables); strip comes from binutils: in the build base, else apt (online), else the
# libraries keep their symbols.
WORKDIR /src
COPY pyproject.toml ./
COPY docker/slim_venv.py /opt/slim_venv.py
RUN mkdir gamerec_assets gamerec_api \
 && touch README.md gamerec_assets/__init__.py gamerec_api/__init__.py \
 && sh /usr/local/bin/gamerec-pip-install --no-build-isolation '.[mysql]' \
 && { command -v strip >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null; } \
      || echo "no binutils: not stripping"; } \
 && python /opt/slim_venv.py /opt/gamerec \
 && rm -rf /src/* /opt/slim_venv.py
# The project itself over the stand-in (its own files only; no dependency is touched).
COPY pyproject.toml README.md ./
COPY gamerec_assets ./gamerec_assets
COPY gamerec_api ./gamerec_api
RUN sh /usr/local/bin/gamerec-pip-install -q --no-deps --no-build-isolation --no-index --force-reinstall . \
 && pip uninstall -q -y setuptools wheel pip \
 && rm -rf /src/build /src/*.egg-info

# Compile every kernel the assets and the API call (a materialization of the bundled data, then the API's model load),
# into NUMBA_CACHE_DIR; the data is thrown away. A container then loads the machine code in milliseconds.
# Outside /src (whose gamerec_assets/ would shadow the installed one): numba keys its cache by the kernels' file path.
WORKDIR /app
COPY workspace.yaml dagster.yaml /app/
COPY docker/warm_kernels.py /opt/warm_kernels.py
RUN rm -rf /src \
 && NUMBA_CPU_NAME="${NUMBA_CPU_NAME}" python /opt/warm_kernels.py \
 && rm /opt/warm_kernels.py

# ---- runtime: the base, the venv, the app files; no compilers, no pip caches, no tests ------------------------------
FROM ${BASE_IMAGE}
ARG NUMBA_CPU_NAME=generic
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/gamerec \
    PATH=/opt/gamerec/bin:$PATH \
    NUMBA_CACHE_DIR=/opt/gamerec/numba-cache \
    NUMBA_CPU_NAME=${NUMBA_CPU_NAME} \
    GAMEREC_HOME=/data \
    DAGSTER_HOME=/data/dagster_home \
    GAMEREC_API_HOST=0.0.0.0 \
    WANDB_MODE=offline

# A fixed uid, so a bind-mounted /data can be given to it (chown 10001 DIR); a writable home (W&B stages artifacts
# under ~/.local/share/wandb).
COPY docker/ensure-libgomp.sh /usr/local/bin/gamerec-ensure-libgomp
RUN sh /usr/local/bin/gamerec-ensure-libgomp \
 && groupadd --gid 10001 gamerec \
 && useradd --uid 10001 --gid gamerec --home-dir /home/gamerec --create-home --shell /usr/sbin/nologin gamerec \
 && mkdir -p /data /app \
 && chown gamerec:gamerec /data

COPY --from=build /opt/gamerec /opt/gamerec
# numba checks that its cache folder is writable before it reads it: the runtime user owns it.
RUN chown -R gamerec:gamerec /opt/gamerec/numba-cache
WORKDIR /app
COPY workspace.yaml dagster.yaml docker/workspace-scale.yaml ./
COPY docker/entrypoint.sh /usr/local/bin/gamerec-entrypoint

USER gamerec
# Tables (SQLite), artifacts, the Dagster instance (DAGSTER_HOME: run history, schedules' state), offline W&B runs.
VOLUME ["/data"]
EXPOSE 3000 8000
ENTRYPOINT ["gamerec-entrypoint"]
CMD ["api"]
