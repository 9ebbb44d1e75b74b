#!/usr/bin/env bash
# Installs what building and testing mixprec needs beyond the CUDA toolkit,
# from Debian's packages, when it is missing. Needs root (or sudo) only when
# something is missing. Usage: scripts/install-deps.sh [test] [example] [bench] [compare] [fuzz] [format] [python] [torch] [sass]
#   compare: Debian's PyTorch for bench/compare.py (scripts/bench-compare.sh).
#   python: a virtual environment in build/venv with safetensors, numpy and
#   ml_dtypes from PyPI (the safetensors interop tests); skipped with a
#   warning when PyPI cannot be reached.
#   torch: a virtual environment in build/torch-venv with PyTorch 2.15 (CPU
#   use; the PyPI wheel's few CUDA libraries that the toolkit does not provide)
#   and what the Python package builds and tests with (nanobind,
#   scikit-build-core, ninja, pytest, numpy, matplotlib, safetensors).
#   sass: cuobjdump for scripts/sass-check.py when the toolkit has none:
#   PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm in build/sass-venv.
set -euo pipefail

want=()
venv=0
torchvenv=0
sass=0
for what in "$@"; do
  case "$what" in
    test) want+=(doctest-dev nlohmann-json3-dev cmake g++ openmpi-bin libopenmpi-dev zlib1g-dev) ;;
    example) want+=(cmake g++ zlib1g-dev python3-matplotlib openmpi-bin libopenmpi-dev) ;;
    bench) want+=(libbenchmark-dev) ;;
    compare) want+=(python3-torch) ;;
    fuzz) want+=(clang libclang-rt-14-dev nlohmann-json3-dev) ;;
    format) want+=(clang-format) ;;
    python) want+=(python3-venv) ; venv=1 ;;
    torch) want+=(python3-venv python3-dev g++ cmake) ; torchvenv=1 ;;
    sass) want+=(python3-venv binutils) ; sass=1 ;;
    *) echo "install-deps: unknown group '$what'" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $venv -eq 1 ]; then
  cd "$(dirname "$0")/.."
  if ! build/venv/bin/python -c "import safetensors, numpy, ml_dtypes" 2>/dev/null; then
    echo "install-deps: creating build/venv (safetensors, numpy, ml_dtypes from PyPI)"
    mkdir -p build
    if ! { /usr/bin/python3 -m venv build/venv &&
           build/venv/bin/pip install -q --disable-pip-version-check safetensors numpy ml_dtypes; }; then
      echo "install-deps: warning: could not set up build/venv; the safetensors interop tests will be off" >&2
    fi
  fi
fi

if [ $torchvenv -eq 1 ]; then
  cd "$(dirname "$0")/.."
  if ! build/torch-venv/bin/python -c "import torch, nanobind, scikit_build_core, pytest, numpy, matplotlib, safetensors, adam_mini" \
       2>/dev/null; then
    echo "install-deps: creating build/torch-venv (PyTorch 2.15 and the Python package's build and test tools, PyPI)"
    mkdir -p build
    py=build/torch-venv/bin/pip
    /usr/bin/python3 -m venv build/torch-venv
    $py install -q --disable-pip-version-check -U "pip>=25"
    # torch's Linux wheel is a CUDA build; --no-deps skips its multi-gigabyte CUDA dependencies and the
    # next lines add the few libraries it loads that the toolkit in /usr/local/cuda does not provide.
    $py install -q --disable-pip-version-check --no-deps torch==2.15.0
    $py install -q --disable-pip-version-check filelock typing-extensions sympy networkx jinja2 fsspec \
      "setuptools>=77.0.3" numpy==2.4.6 safetensors==0.8.0 ml_dtypes==0.7.0 matplotlib==3.11.2 \
      nanobind==3.1.0 scikit-build-core==1.1.2 ninja==1.13.2 pytest==9.2.0
    $py install -q --disable-pip-version-check --no-deps adam-mini==1.1.1  # the authors' Adam-mini (a reference)
    $py install -q --disable-pip-version-check "cuda-toolkit[cufile]==13.2.2" nvidia-cusparselt-cu13==0.8.1 \
      nvidia-nvshmem-cu13==3.7.2 2>&1 | grep -v "dependency conflicts\|^torch 2.15.0 requires\|resolver does not" || true
    $py install -q --disable-pip-version-check --no-deps nvidia-nccl-cu13==2.30.7
    build/torch-venv/bin/python -c "import torch; torch.ones(2) @ torch.ones(2)"
  fi
fi

if [ $sass -eq 1 ] && ! command -v cuobjdump >/dev/null 2>&1; then
  cd "$(dirname "$0")/.."
  if ! find build/sass-venv -name nvdisasm -path '*/bin/*' 2>/dev/null | grep -q .; then
    echo "install-deps: creating build/sass-venv (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm from PyPI)"
    mkdir -p build
    /usr/bin/python3 -m venv build/sass-venv
    build/sass-venv/bin/pip install -q --disable-pip-version-check nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  fi
fi
