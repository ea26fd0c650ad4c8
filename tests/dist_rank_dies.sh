#!/usr/bin/env bash
# ctest dist_rank_dies_np{2,3,4} and dist_timeout_np{2,3}: runs tests/dist_rank_dies.cpp under
# mpirun; passes only when the failure did happen (the message is printed) AND mpirun then ended
# the job with a non-zero exit (ctest's TIMEOUT 30 catches a hang). A binary that cannot start
# fails.
#   dist_rank_dies.sh <mpiexec> <ranks> <dist_rank_dies binary>            rank 1 dies
#   dist_rank_dies.sh <mpiexec> <ranks> <dist_rank_dies binary> timeout    the last rank stalls
#     60 s; rank 0 must raise the 2 s collective timeout naming the bucket, the rank and the
#     time waited, and the job must end within 15 s (the sleeper is killed by mpirun).
#   dist_rank_dies.sh <mpiexec> <ranks> <dist_rank_dies binary> timeout-mpi    the same on DDP's
#     deterministic = false, overlap = false path (MPI_Iallreduce requests instead of the
#     blocking MPI_Allreduce, which could not time out).
set -uo pipefail
mode=${4:-die}
t0=$(date +%s.%N)
if [ "$mode" != die ]; then
  out=$("$1" -np "$2" --bind-to none "$3" "$mode" 2>&1)
else
  out=$("$1" -np "$2" --bind-to none "$3" 2>&1)
fi
rc=$?
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "$out" | tail -n 20
if [ "$mode" != die ]; then
  want="dist_rank_dies: rank $(($2 - 1)) sleeps 60 s at step 2"
  msg='dist_rank_dies: dist: rank 0 waited [0-9.]+ s for the reduction of gradient bucket [0-9]+ \(timeout 2 s\)'
  if ! grep -q "$want" <<<"$out"; then echo "dist_rank_dies.sh: the last rank never reached its sleep"; exit 1; fi
  if ! grep -Eq "$msg" <<<"$out"; then echo "dist_rank_dies.sh: rank 0 did not report the timeout"; exit 1; fi
  if awk -v e="$elapsed" 'BEGIN { exit !(e > 15) }'; then echo "dist_rank_dies.sh: the job took ${elapsed} s (> 15 s)"; exit 1; fi
else
  if ! grep -q "dist_rank_dies: rank 1 exits at step 2" <<<"$out"; then
    echo "dist_rank_dies.sh: rank 1 never reached its exit (did the job start?)"
    exit 1
  fi
fi
if [ "$rc" -eq 0 ]; then
  echo "dist_rank_dies.sh: mpirun exited 0"
  exit 1
fi
echo "dist_rank_dies.sh ($mode): mpirun ended the job with exit code $rc after ${elapsed} s"
