#!/usr/bin/env bash
# Prepares .deps/root: the Debian packages that building the tests and the
# benchmarks needs beyond the CUDA toolkit (doctest, Google Benchmark and its
# shared library, nlohmann/json), downloaded with apt-get download and
# unpacked with dpkg -x. Run it here, where Debian's archive is reachable;
# the folder is ignored by git and travels with the checkout to a machine
# that has no network (the GPU machine), where scripts/gpu-check.sh puts
# .deps/root/usr on CMAKE_PREFIX_PATH. Needs no root.
#
# Usage: scripts/carry-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(doctest-dev libbenchmark-dev libbenchmark1debian nlohmann-json3-dev)
rm -rf .deps
mkdir -p .deps/debs .deps/root
(cd .deps/debs && apt-get download "${packages[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
for pkg in "${packages[@]}"; do
  deb=$(ls .deps/debs/"${pkg}"_*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || { echo "carry-deps: apt-get download did not fetch $pkg" >&2; exit 1; }
  dpkg -x "$deb" .deps/root
done
for config in usr/lib/cmake/doctest/doctestConfig.cmake \
              usr/lib/x86_64-linux-gnu/cmake/benchmark/benchmarkConfig.cmake \
              usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake; do
  [ -f ".deps/root/$config" ] || { echo "carry-deps: $config missing after unpacking" >&2; exit 1; }
done
echo "carry-deps: $(du -sh .deps | cut -f1) in .deps ($(ls .deps/debs | tr '\n' ' '))"
