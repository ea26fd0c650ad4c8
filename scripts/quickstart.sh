#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main demo. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [ -x build/examples/fashion_mnist ]; then
  exec ./build/examples/fashion_mnist "$@"
else
  exec ./build/examples/quickstart "$@"
fi
