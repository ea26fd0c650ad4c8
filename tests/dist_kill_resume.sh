#!/usr/bin/env bash
# ctest dist_kill_resume_np2 (issue 14: "checkpoint, kill, resume equals uninterrupted"): the MLP
# demo under mpirun -np 2 --ddp on the first 6000 images (47 steps per epoch), 3 epochs, a
# checkpoint after every epoch (written by rank 0, atomically: a temporary file renamed into place).
#   1. an uninterrupted run: every step's loss and every epoch's figures;
#   2. kill -9 mid-training: once the first checkpoint exists, one rank (a child of mpirun) is
#      killed with SIGKILL; mpirun must exit non-zero;
#   3. kill -9 mid-write: once the first checkpoint exists, wait until rank 0 writes the next one
#      (its temporary file .ck.tmp.<pid> appears, named by rank 0's pid) and kill rank 0 then; the
#      temporary file must be left behind (so the kill did land inside the write: retried up to
#      3 times if the rename won the race), and the checkpoint in place must be the previous one;
# after each kill a run resumed from the checkpoint must print the same losses and epoch figures,
# bit for bit, as the uninterrupted run from the resumed step on.
# Usage: dist_kill_resume.sh <fashion_mnist binary> <mpiexec>. Exit 77 (skipped) without the data.
set -euo pipefail
demo=$1
mpiexec=$2
data=${TAPEGRAD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if ! ls "$data"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "Fashion-MNIST not found in $data: skipped"
  exit 77
fi
dir=$(mktemp -d)
mpid=
cleanup() {
  [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
common=(--limit 6000 --epochs 3 --log-steps 1000000 --out "$dir/out")
# The step losses and the epoch figures (without their times).
figures() { grep -E '^(step|epoch) ' | sed -E 's/(test acc [0-9.]+%).*/\1/' || true; }
runN() { "$mpiexec" -np 2 --bind-to none "$demo" --ddp "${common[@]}" "$@" 2>/dev/null; }

runN | figures >"$dir/uninterrupted"
[ "$(grep -c '^step' "$dir/uninterrupted")" -eq 141 ] || { echo "expected 141 step losses"; exit 1; }
[ "$(grep -c '^epoch' "$dir/uninterrupted")" -eq 3 ] || { echo "expected 3 epochs"; exit 1; }

# kill_run MODE CK: starts the training with checkpoints to CK in the background, kills as MODE
# says (step | write); returns 0 when the kill landed as intended.
kill_run() {
  local mode=$1 ck=$2 victim="" rc
  local base d
  base=$(basename "$ck")
  d=$(dirname "$ck")
  "$mpiexec" -np 2 --bind-to none "$demo" --ddp "${common[@]}" --checkpoint "$ck" >"$dir/killed.log" 2>&1 &
  mpid=$!
  while [ ! -e "$ck" ]; do
    kill -0 "$mpid" 2>/dev/null || { echo "the run ended before its first checkpoint"; cat "$dir/killed.log"; exit 1; }
    sleep 0.005
  done
  if [ "$mode" = step ]; then
    victim=$(pgrep -P "$mpid" | head -n 1 || true)
  else
    shopt -s nullglob
    local tmps
    while kill -0 "$mpid" 2>/dev/null; do
      tmps=("$d/.$base.tmp."*)
      if ((${#tmps[@]})); then victim=${tmps[0]##*.}; break; fi
    done
    shopt -u nullglob
  fi
  [ -n "$victim" ] || { echo "no process to kill ($mode): the run ended first"; wait "$mpid" || true; mpid=; return 1; }
  kill -9 "$victim"
  set +e
  wait "$mpid"
  rc=$?
  set -e
  mpid=
  [ "$rc" -ne 0 ] || { echo "mpirun exited 0 after kill -9 $victim ($mode)"; exit 1; }
  echo "kill -9 $victim ($mode): mpirun exited with $rc"
  if [ "$mode" = write ]; then
    [ -e "$d/.$base.tmp.$victim" ] || { echo "the write had completed before the kill: again"; return 1; }
    echo "rank 0 (pid $victim) was killed inside the write: its temporary file is left behind"
  fi
}

# resume_check CK WANT_EPOCH: resumes from CK and compares with the uninterrupted run.
resume_check() {
  local ck=$1 want=$2 head step
  runN --checkpoint "$ck" --resume "$ck" >"$dir/resumed.log"
  head=$(grep -m1 '^resumed from' "$dir/resumed.log" || true)
  echo "$head"
  [[ "$head" =~ epoch\ ([0-9]+),\ batch\ 0,\ step\ ([0-9]+)$ ]] || { echo "not resumed at an epoch's start"; exit 1; }
  [ -z "$want" ] || [ "${BASH_REMATCH[1]}" = "$want" ] || { echo "resumed at epoch ${BASH_REMATCH[1]}, expected $want"; exit 1; }
  step=${BASH_REMATCH[2]}
  figures <"$dir/resumed.log" >"$dir/resumed"
  awk -v s="$step" '/^step/ { if ($2 > s) p = 1 } p' "$dir/uninterrupted" >"$dir/expected"
  [ "$(grep -c '^step' "$dir/expected")" -gt 0 ] || { echo "nothing left to compare after step $step"; exit 1; }
  if cmp -s "$dir/expected" "$dir/resumed"; then
    echo "resumed after step $step: the same $(wc -l <"$dir/resumed") lines as uninterrupted, bit for bit"
  else
    echo "resumed run differs from the uninterrupted one:"
    diff "$dir/expected" "$dir/resumed" | head -n 20 || true
    exit 1
  fi
}

kill_run step "$dir/ck_step" || { echo "the kill mid-training did not happen"; exit 1; }
resume_check "$dir/ck_step" ""

ok=
for attempt in 1 2 3; do
  rm -f "$dir/ck_write" "$dir"/.ck_write.tmp.*
  if kill_run write "$dir/ck_write"; then ok=1; break; fi
done
[ -n "$ok" ] || { echo "could not kill rank 0 inside a checkpoint write in 3 attempts"; exit 1; }
resume_check "$dir/ck_write" 2
