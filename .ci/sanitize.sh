#!/usr/bin/env bash
# ASan + UBSan over the whole test suite, then Valgrind memcheck on one example.
#   1. build-asan: -DTAPEGRAD_SANITIZE=address (-fsanitize=address,undefined
#      -fno-omit-frame-pointer -fno-sanitize-recover=all on every target), RelWithDebInfo at -O1;
#      ctest runs every test except the label "install" (the packaging tests compile a consumer
#      project and exercise no library code beyond the quickstart path). Examples and benchmarks
#      are not built there (no test runs them).
#   2. build-valgrind: the quickstart example without sanitizers, under memcheck (any error or
#      definite leak fails).
# About 10–15 minutes on 2 cores. Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1

cmake -S . -B build-asan -DTAPEGRAD_SANITIZE=address -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DTAPEGRAD_BUILD_BENCH=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
ctest --test-dir build-asan --output-on-failure -j"$JOBS" -LE install --timeout 900

if command -v valgrind >/dev/null; then
  cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_BUILD_TESTS=OFF \
    -DTAPEGRAD_BUILD_BENCH=OFF >/dev/null
  cmake --build build-valgrind -j"$JOBS" --target quickstart
  valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite ./build-valgrind/examples/quickstart >/dev/null
  echo "valgrind: quickstart clean"
else
  echo "valgrind not installed: skipped (apt-get install valgrind)" >&2
  exit 1
fi
echo "sanitize: clean"
