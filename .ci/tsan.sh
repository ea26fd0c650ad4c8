#!/usr/bin/env bash
# ThreadSanitizer on tests/test_threads.cpp (independent tapes trained on separate threads):
# a dedicated build-tsan with -DTAPEGRAD_SANITIZE=thread that builds only that test. OpenBLAS
# is not instrumented, so it runs single-threaded (the test calls set_blas_threads(1) too) and
# reports inside libopenblas are suppressed (.ci/tsan.supp). ~3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/.ci/tsan.supp ${TSAN_OPTIONS:-}"
cmake -S . -B build-tsan -DTAPEGRAD_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTAPEGRAD_BUILD_EXAMPLES=OFF -DTAPEGRAD_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$(nproc)" --target test_threads
./build-tsan/tests/test_threads
echo "tsan: clean"
