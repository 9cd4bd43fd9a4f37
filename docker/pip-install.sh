#!/bin/sh
# pip install into the image's venv from /wheels (the build context's wheelhouse) and, unless PIP_NO_INDEX is set,
# the index: PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_TRUSTED_HOST when set (a mirror), else PyPI. The build args
# are always defined, so an empty one is unset here (pip would read "" as a value).
set -eu
for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_NO_INDEX; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || unset "$name"
done
wheels=$(find /wheels -name '*.whl' | wc -l)
echo "gamerec-pip-install: $wheels wheels in the wheelhouse; index: ${PIP_NO_INDEX:+none (offline)}${PIP_NO_INDEX:-${PIP_INDEX_URL:-PyPI}}"
exec pip install --find-links /wheels "$@"
