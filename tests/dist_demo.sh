#!/usr/bin/env bash
# A Fashion-MNIST demo in data-parallel mode (ctest dist_demo_np2: the MLP, examples/fashion_mnist;
# dist_demo_cnn_np2: the CNN, examples/fashion_cnn; issue 14, item 6):
#   1. the first 20 step losses of `mpirun -np 2 … --ddp` agree with one process (same global
#      batch 128) within 1e-5 relative;
#   2. under mpirun, a run stopped at step 15 with a checkpoint (written by rank 0) and resumed
#      (read by rank 0, broadcast) prints the same losses, bit for bit, as an uninterrupted run.
# Usage: dist_demo.sh <demo binary> <mpiexec> [limit [losses-only]]: train on the first `limit`
# images (6000; 0 = all 60,000); `losses-only` skips part 2. Exit 77 (skipped) without the data set.
set -euo pipefail
demo=$1
mpiexec=$2
limit=${3:-6000}
only=${4:-}
data=${TAPEGRAD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if ! ls "$data"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "Fashion-MNIST not found in $data: skipped"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common=(--limit "$limit" --epochs 1 --log-steps 40 --out "$dir/out")
run1() { "$demo" "${common[@]}" "$@" 2>/dev/null | grep '^step' || true; }
runN() { "$mpiexec" -np 2 --bind-to none "$demo" --ddp "${common[@]}" "$@" 2>/dev/null | grep '^step' || true; }

run1 --max-steps 20 >"$dir/single"
runN --max-steps 20 >"$dir/ddp"
[ "$(wc -l <"$dir/single")" -eq 20 ] && [ "$(wc -l <"$dir/ddp")" -eq 20 ] || { echo "expected 20 losses each"; exit 1; }
paste "$dir/single" "$dir/ddp" | awk '
  { d = ($4 - $8) / $4; if (d < 0) d = -d; if (d > m) m = d }
  END { printf "first 20 losses, 2 ranks vs 1 process: max relative difference %.3g\n", m; exit !(m <= 1e-5) }'

[ "$only" = losses-only ] && exit 0
runN --max-steps 40 >"$dir/uninterrupted"
runN --max-steps 15 --checkpoint "$dir/ck" >"$dir/part1"
runN --max-steps 40 --resume "$dir/ck" >"$dir/part2"
cat "$dir/part1" "$dir/part2" >"$dir/resumed"
[ "$(wc -l <"$dir/uninterrupted")" -eq 40 ] || { echo "expected 40 losses"; exit 1; }
if cmp -s "$dir/uninterrupted" "$dir/resumed"; then
  echo "checkpoint at step 15 and resume under mpirun: the same 40 losses as uninterrupted"
else
  echo "resumed run differs from the uninterrupted one:"
  diff "$dir/uninterrupted" "$dir/resumed" || true
  exit 1
fi
