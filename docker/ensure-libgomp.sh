#!/bin/sh
# The OpenMP runtime implicit's compiled ALS/BPR link against (libgomp.so.1): present in .ci/docker.sh's base, added
# from Debian's packages (online) on a base without it, such as python:3.11-slim.
set -eu
if ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then
  exit 0
fi
echo "gamerec: installing Debian's libgomp1 (the OpenMP runtime of implicit's ALS/BPR)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgomp1 >/dev/null
rm -rf /var/lib/apt/lists/*
