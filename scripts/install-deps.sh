#!/usr/bin/env bash
# Installs what building and testing mixprec needs beyond the CUDA toolkit,
# from Debian's packages, when it is missing. Needs root (or sudo) only when
# something is missing. Usage: scripts/install-deps.sh [test] [example] [bench] [fuzz]
set -euo pipefail

want=()
for what in "$@"; do
  case "$what" in
    test) want+=(doctest-dev cmake g++) ;;
    example) want+=(cmake g++ zlib1g-dev python3-matplotlib) ;;
    bench) want+=(libbenchmark-dev python3-torch) ;;
    fuzz) want+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown group '$what'" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
