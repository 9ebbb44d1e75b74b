#!/usr/bin/env bash
# The Python package's tests: installs build/torch-venv if missing, builds the
# package's host module into it (pip install ./python; the CUDA module is
# CI's own step, scripts/python-cuda-build.sh), then runs pytest on
# python/tests. Called by scripts/test.sh; MIXPREC_SKIP_PYTHON=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MIXPREC_SKIP_PYTHON:-0}" = 1 ]; then
  echo "python-test: skipped (MIXPREC_SKIP_PYTHON=1)"
  exit 0
fi
scripts/install-deps.sh torch
py=build/torch-venv/bin/python
start=$(date +%s)
"$py" -m pip install -q --disable-pip-version-check --no-build-isolation ./python \
  -C cmake.define.MIXPREC_PYTHON_CUDA=OFF
echo "python-test: package built and installed in $(( $(date +%s) - start )) s"
cd python/tests
OMP_WAIT_POLICY=PASSIVE "../../$py" -m pytest -q -p no:cacheprovider "$@"
