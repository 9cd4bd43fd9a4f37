#!/usr/bin/env bash
# Debian's prometheus package (/usr/bin/prometheus and /usr/bin/promtool) for the tests of deploy/prometheus and
# deploy/grafana (`make prometheus`, a step of `make test`). The tests run their own prometheus on a free port, so
# the package's own service is stopped and disabled: nothing is left listening on 9090.
set -u
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
echo "installing Debian's prometheus (prometheus, promtool) for the dashboard and alert-rule tests"
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
      >/dev/null); then
  echo "WARNING: could not install prometheus"
  exit 0
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
