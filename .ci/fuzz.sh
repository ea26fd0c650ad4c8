#!/usr/bin/env bash
# Fuzzes the IDX reader and the checkpoint loader with libFuzzer (clang-14, ASan + UBSan):
# builds fuzz/ in build-fuzz, then runs each target for FUZZ_SECONDS (default 60) from the
# committed seed corpus (fuzz/corpus/<target>/, copied: new inputs stay in build-fuzz).
# Bounds per target: -rss_limit_mb=2048 (whole process) and -malloc_limit_mb=256 (one
# allocation); a crash, a leak, a sanitizer report or a bound exceeded fails the script.
# Needs: apt-get install clang-14 libclang-rt-14-dev
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
CXX_BIN=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_idx fuzz_checkpoint
for t in idx checkpoint; do
  work=build-fuzz/corpus-$t
  mkdir -p "$work" build-fuzz/artifacts-$t
  cp -n fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "== fuzz_$t: ${SECONDS_PER_TARGET}s"
  ./build-fuzz/fuzz_$t "$work" fuzz/corpus/$t \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=65536 \
    -timeout=10 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts-$t/ 2>&1 | tail -n 12
  # libFuzzer exits non-zero on any finding; pipefail propagates it.
done
echo "fuzz: no crash, leak or limit exceeded"
