#!/usr/bin/env bash
# The character-level GPT demo (examples/char_gpt, issue 13) on a tiny model and a tiny text
# (ctest char_gpt_demo):
#   1. same seed, same curve: two runs print the same 20 step losses, estimates, full
#      validation loss and sample, bit for bit; another seed gives other losses;
#   2. the loss drops: the mean of the last 5 step losses is below the mean of the first 5;
#   3. a run stopped at step 8 with a checkpoint and resumed prints the same losses (and the same
#      final validation loss and sample) as an uninterrupted run;
#   4. a missing fortunes directory is an error naming the path;
#   5. a checkpoint of the char_gpt before the nanoGPT recipe (tests/reference/char_gpt_v1.tgc:
#      parameter names with an index prefix, one AdamW group) is refused with a clear error.
# Usage: char_gpt_demo.sh <char_gpt binary>
set -euo pipefail
demo=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for i in $(seq 1 300); do
  echo "the quick brown fox number $((i % 7)) jumps over the lazy dog; the cat sat on mat $((i % 5))."
done >"$dir/text.txt"
common=(--text "$dir/text.txt" --layers 1 --heads 2 --embd 16 --block 16 --batch 4 --iters 20
        --eval-interval 10 --eval-batches 2 --log-steps 20 --sample 60 --lr 1e-2 --warmup-iters 2
        --out "$dir/out")
# Everything but wall times.
run() { "$demo" "${common[@]}" "$@" 2>/dev/null | sed -E 's/\(?[0-9.]+s( training)?\)?//g; s/[0-9.]+ ms\/step//'; }

run --seed 7 >"$dir/a"
run --seed 7 >"$dir/b"
if ! cmp -s "$dir/a" "$dir/b"; then
  echo "two runs with seed 7 differ:"; diff "$dir/a" "$dir/b" || true; exit 1
fi
[ "$(grep -c '^step [0-9]* loss' "$dir/a")" -eq 20 ] || { echo "expected 20 step losses"; cat "$dir/a"; exit 1; }
grep -q '^validation loss over all' "$dir/a" || { echo "no full validation loss"; cat "$dir/a"; exit 1; }
grep -q '^sample' "$dir/a" || { echo "no sample"; cat "$dir/a"; exit 1; }
echo "seed 7 twice: the same output, bit for bit"
run --seed 8 >"$dir/c"
if cmp -s <(grep '^step [0-9]* loss' "$dir/a") <(grep '^step [0-9]* loss' "$dir/c"); then
  echo "seeds 7 and 8 give the same losses"; exit 1
fi
grep '^step [0-9]* loss' "$dir/a" | awk '
  NR <= 5 { f += $4 } NR > 15 { l += $4 }
  END { printf "mean loss of steps 1-5: %.4f, of steps 16-20: %.4f\n", f / 5, l / 5; exit !(l < f) }'

run --seed 7 --max-steps 8 --checkpoint "$dir/ck" >"$dir/part1"
run --seed 7 --resume "$dir/ck" >"$dir/part2"
grep -q 'resumed from' "$dir/part2" || { echo "did not resume"; cat "$dir/part2"; exit 1; }
keep() { grep -E '^(step [0-9]+ loss|validation loss|sample)' "$1"; }
if cmp -s <(keep "$dir/a") <(cat <(keep "$dir/part1") <(keep "$dir/part2")); then
  echo "checkpoint at step 8 and resume: the same losses, validation loss and sample as uninterrupted"
else
  echo "the resumed run differs:"; diff <(keep "$dir/a") <(cat <(keep "$dir/part1") <(keep "$dir/part2")) || true
  exit 1
fi
[ "$(tail -n 1 "$dir/a")" = "$(tail -n 1 "$dir/part2")" ] || { echo "resumed sample differs"; exit 1; }

if "$demo" --data "$dir/no-such-dir" --iters 1 >"$dir/out.txt" 2>"$dir/err.txt"; then
  echo "a missing fortunes directory did not fail"; exit 1
fi
grep -q "fortunes directory $dir/no-such-dir does not exist" "$dir/err.txt" || { echo "unclear error:"; cat "$dir/err.txt"; exit 1; }
echo "missing directory: $(cat "$dir/err.txt")"

# tests/reference/char_gpt_v1.tgc was written by char_gpt at commit 6cf7ab5 (before the recipe
# of parameter groups, warm-up + cosine and clipping; names "000.transformer.wte.weight", …):
#   char_gpt --text T --layers 1 --heads 1 --embd 4 --block 4 --batch 1 --iters 2 \
#            --eval-interval 1 --eval-batches 1 --sample 0 --checkpoint char_gpt_v1.tgc
# with T 60 lines "abcdefgh". The error comes before the vocabulary check.
old="$(dirname "$0")/reference/char_gpt_v1.tgc"
[ -f "$old" ] || { echo "missing fixture $old"; exit 1; }
if "$demo" "${common[@]}" --resume "$old" --checkpoint "$dir/ck_old" >"$dir/out.txt" 2>"$dir/err.txt"; then
  echo "an old checkpoint was resumed"; exit 1
fi
grep -q "a checkpoint of an older char_gpt (parameter names with an index prefix" "$dir/err.txt" ||
  { echo "unclear error for an old checkpoint:"; cat "$dir/err.txt"; exit 1; }
echo "old checkpoint: $(cat "$dir/err.txt")"
