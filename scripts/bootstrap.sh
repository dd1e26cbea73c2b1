#!/usr/bin/env bash
# Create .venv (if needed) and install evalgemma with everything it needs, pinned by
# constraints.txt. Idempotent: a second call only checks. Usage:
#   scripts/bootstrap.sh            # runtime + offline default model
#   scripts/bootstrap.sh --test     # + test tools, Ray, the ONNX Runtime backend, and Debian chromium for the report test
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.evalgemma-installed-$want_test-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU wheel of torch (an unpinned torch pulls a multi-GB CUDA build).
  .venv/bin/python -m pip install -q "torch==2.13.0"
  extras="offline-model"
  [[ $want_test == 1 ]] && extras="offline-model,test,ray,backends"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[${extras}]"
  touch "$stamp"
fi
if [[ $want_test == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the HTML report browser test will fail in CI" >&2
  else
    echo "warning: chromium not found (apt-get install chromium); the HTML report browser test needs it" >&2
  fi
fi
