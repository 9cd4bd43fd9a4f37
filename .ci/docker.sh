#!/usr/bin/env bash
# Docker for the image test (tests/test_docker_image.py) on a machine without a reachable public registry:
#   install     Debian's docker.io, docker-compose and debootstrap (apt), those not already there
#   daemon      a Docker daemon if none answers: dockerd --iptables=false --bridge=none (containers use --network host)
#   base        $GAMEREC_BASE_TAG (gamerec-base:bookworm-<hash>): a minimal Debian with python3 + python3-venv from Debian's
#               packages (debootstrap), imported with `docker import`, and gamerec-build:bookworm, the same plus
#               binutils (the build stage strips the native libraries); the rootfs tarballs are cached
#   wheelhouse  docker/wheelhouse/: `pip wheel` of the project's dependencies from the configured package index
#               (the host's pip configuration), cached; what the Dockerfile installs offline
#   build       docker build -t $GAMEREC_IMAGE (gamerec:test) --build-arg BASE_IMAGE=<base> --build-arg PIP_NO_INDEX=1;
#               with GAMEREC_DOCKER_BASE: that base, from the index (GAMEREC_PIP_INDEX_URL: a mirror), no wheelhouse
# No argument: install, daemon, then base and wheelhouse side by side (what .ci/run does before `make test`).
# `prepare`: the same without install. With GAMEREC_DOCKER_BASE set (e.g. python:3.11-slim where a registry is
# reachable) `base` and `wheelhouse` do nothing and `build` installs from the index.
# Cache: $GAMEREC_DOCKER_CACHE (/var/cache/gamerec) keeps the base's tarball and the wheels between runs; it is only a
# shortcut: a missing or broken cache is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${GAMEREC_DOCKER_CACHE:-/var/cache/gamerec}
SUITE=${GAMEREC_DEBIAN_SUITE:-bookworm}
# The base's Debian packages: libgomp1 is the OpenMP runtime implicit's compiled ALS/BPR link against. The tags
# carry a hash of the package lists, so a daemon holding a base made from an older list builds the new one.
BASE_PACKAGES=python3,python3-venv,ca-certificates,libgomp1
BUILD_PACKAGES=binutils
BASE_TAG=${GAMEREC_BASE_TAG:-gamerec-base:$SUITE-$(echo "$BASE_PACKAGES" | sha1sum | cut -c1-8)}
BUILD_TAG=${GAMEREC_BUILD_BASE_TAG:-gamerec-build:$SUITE-$(echo "$BASE_PACKAGES $BUILD_PACKAGES" | sha1sum | cut -c1-8)}
IMAGE=${GAMEREC_IMAGE:-gamerec:test}
WHEELHOUSE=$ROOT/docker/wheelhouse
PYTHON=${PYTHON:-python3}
DOCKERD_LOG=${GAMEREC_DOCKERD_LOG:-/var/log/gamerec-dockerd.log}
START=$SECONDS

say() { echo "docker.sh [$((SECONDS - START)) s] $*"; }

# The first Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
  local uri
  uri=$(grep -hs -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

do_install() {
  local wanted=()
  command -v docker >/dev/null && command -v dockerd >/dev/null || wanted+=(docker.io)
  # The compose file's check (tests/test_docker_image.py) takes the plugin or Debian's docker-compose.
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || wanted+=(docker-compose)
  [ -n "${GAMEREC_DOCKER_BASE:-}" ] || command -v debootstrap >/dev/null || wanted+=(debootstrap)
  if [ ${#wanted[@]} -eq 0 ]; then
    say "install: docker, compose and debootstrap are installed"
    return
  fi
  say "install: apt-get install ${wanted[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
  say "install: done"
}

daemon_up() { timeout 10 docker info >/dev/null 2>&1; }

do_daemon() {
  if daemon_up; then
    say "daemon: a Docker daemon answers"
    return
  fi
  command -v dockerd >/dev/null || { echo "docker.sh: no dockerd (run .ci/docker.sh install)" >&2; return 1; }
  [ "$(id -u)" = 0 ] || { echo "docker.sh: starting dockerd needs root" >&2; return 1; }
  say "daemon: starting dockerd --iptables=false --bridge=none (log: $DOCKERD_LOG)"
  # containerd comes with docker.io; dockerd starts its own when none runs.
  nohup dockerd --iptables=false --bridge=none >>"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 60); do
    daemon_up && { say "daemon: up"; return; }
    sleep 1
  done
  echo "docker.sh: dockerd did not answer within 60 s; the end of $DOCKERD_LOG:" >&2
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  return 1
}

# The base's packages; the tarball's name carries them, so a change rebuilds it.
base_tarball() { echo "$CACHE/base-$SUITE-$(echo "$BASE_PACKAGES" | sha1sum | cut -c1-8).tar"; }
build_tarball() { echo "$CACHE/build-$SUITE-$(echo "$BASE_PACKAGES $BUILD_PACKAGES" | sha1sum | cut -c1-8).tar"; }

import_base() {  # tarball tag
  docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$1" "$2" >/dev/null
}

# What an image needs not: downloaded .debs, package lists, docs, man pages, translations, glibc's iconv modules.
trim_rootfs() {
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* "$1"/usr/share/man/* \
    "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/usr/lib/x86_64-linux-gnu/gconv/*.so "$1"/var/log/*.log \
    "$1"/var/cache/debconf/*-old
}

do_base() {
  if [ -n "${GAMEREC_DOCKER_BASE:-}" ]; then
    say "base: GAMEREC_DOCKER_BASE=$GAMEREC_DOCKER_BASE (no debootstrap)"
    return
  fi
  if docker image inspect "$BASE_TAG" >/dev/null 2>&1 && docker image inspect "$BUILD_TAG" >/dev/null 2>&1; then
    say "base: $BASE_TAG and $BUILD_TAG are in the daemon"
    return
  fi
  local base build
  base=$(base_tarball)
  build=$(build_tarball)
  if [ -s "$base" ] && [ -s "$build" ]; then
    say "base: importing the cached $base and $build"
    if import_base "$base" "$BASE_TAG" && import_base "$build" "$BUILD_TAG"; then
      say "base: $BASE_TAG and $BUILD_TAG imported"
      return
    fi
    say "base: a cached tarball is broken; building them again"
  fi
  rm -f "$base" "$build"
  command -v debootstrap >/dev/null || { echo "docker.sh: no debootstrap (run .ci/docker.sh install)" >&2; return 1; }
  mkdir -p "$CACHE"
  local rootfs mirror
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  mirror=$(debian_mirror)
  say "base: debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    return 1
  fi
  trim_rootfs "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$base.part" .
  # The build stage's base: the same system plus binutils (strip), from the same mirror.
  say "base: + $BUILD_PACKAGES for the build stage"
  if ! { chroot "$rootfs" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$rootfs" \
    apt-get install -y -qq --no-install-recommends ${BUILD_PACKAGES//,/ }; } >>"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log" "$base.part"
    return 1
  fi
  trim_rootfs "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$build.part" .
  mv "$base.part" "$base"
  mv "$build.part" "$build"
  rm -rf "$rootfs" "$rootfs.log"
  import_base "$base" "$BASE_TAG"
  import_base "$build" "$BUILD_TAG"
  say "base: $BASE_TAG ($(du -h "$base" | cut -f1) tarball) and $BUILD_TAG built and imported"
}

do_wheelhouse() {
  if [ -n "${GAMEREC_DOCKER_BASE:-}" ]; then
    say "wheelhouse: GAMEREC_DOCKER_BASE set: the build installs from the index"
    return
  fi
  local cached="$CACHE/wheelhouse"
  mkdir -p "$WHEELHOUSE" "$cached"
  # The cache's wheels into the build context (hard links when on the same file system).
  find "$cached" -maxdepth 1 -name '*.whl' -exec cp -lf {} "$WHEELHOUSE"/ \; 2>/dev/null \
    || find "$cached" -maxdepth 1 -name '*.whl' -exec cp -f {} "$WHEELHOUSE"/ \;
  local n
  n=$(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l)
  # Wheels for every dependency (and setuptools/wheel, the project's build backend, for an offline build); the
  # project's own wheel is not kept: the image builds it from its sources.
  local wanted=("$ROOT[mysql]" "setuptools>=77" wheel)  # the image installs the [mysql] extra (Dockerfile)
  if [ "$n" -gt 0 ] && "$PYTHON" -m pip wheel -q --no-index --find-links "$WHEELHOUSE" -w "$WHEELHOUSE" \
    "${wanted[@]}" >/dev/null 2>&1; then
    say "wheelhouse: complete from the cache ($n wheels)"
  else
    say "wheelhouse: pip wheel from the configured index ($n wheels cached)"
    "$PYTHON" -m pip wheel -q --find-links "$WHEELHOUSE" -w "$WHEELHOUSE" "${wanted[@]}" 2>&1 \
      | grep -v "is ignored: it is neither a file nor a directory" || true
    "$PYTHON" -m pip wheel -q --no-index --find-links "$WHEELHOUSE" -w "$WHEELHOUSE" "${wanted[@]}" >/dev/null
  fi
  rm -f "$WHEELHOUSE"/gamerec-*.whl
  rm -rf "$ROOT/build" "$ROOT"/*.egg-info
  find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' -exec cp -lf {} "$cached"/ \; 2>/dev/null \
    || find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' -exec cp -f {} "$cached"/ \;
  say "wheelhouse: $(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

do_build() {
  local args=()
  if [ -n "${GAMEREC_DOCKER_BASE:-}" ]; then
    args+=(--build-arg "BASE_IMAGE=$GAMEREC_DOCKER_BASE")
    [ -z "${GAMEREC_PIP_INDEX_URL:-}" ] || args+=(--build-arg "PIP_INDEX_URL=$GAMEREC_PIP_INDEX_URL")
  else
    args+=(--build-arg "BASE_IMAGE=$BASE_TAG" --build-arg "BUILD_BASE_IMAGE=$BUILD_TAG" --build-arg PIP_NO_INDEX=1)
  fi
  local log="${TMPDIR:-/tmp}/gamerec-docker-build.log"
  say "build: docker build -t $IMAGE ${args[*]} . (log: $log)"
  # The classic builder: BuildKit needs the buildx plugin, which Debian's docker.io (20.10) does not ship.
  if ! DOCKER_BUILDKIT=0 docker build -t "$IMAGE" "${args[@]}" . >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    return 1
  fi
  say "build: $IMAGE is $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"
}

# The base (debootstrap: Debian's mirror) and the wheelhouse (the package index) at once: both wait on downloads.
do_base_and_wheelhouse() {
  do_base &
  local base_pid=$!
  do_wheelhouse || { wait "$base_pid" || true; return 1; }
  wait "$base_pid"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(install daemon base_and_wheelhouse)
for step in "${steps[@]}"; do
  case "$step" in
    install | daemon | base | wheelhouse | build | base_and_wheelhouse) "do_$step" ;;
    prepare) do_daemon && do_base_and_wheelhouse ;;
    *) echo "usage: .ci/docker.sh [install|daemon|base|wheelhouse|build|prepare]..." >&2; exit 2 ;;
  esac
done
say "done: ${steps[*]}"
