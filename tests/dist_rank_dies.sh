#!/usr/bin/env bash
# ctest dist_rank_dies_np{2,3,4}: runs tests/dist_rank_dies.cpp under mpirun; passes only when
# rank 1 did start training and die (its message is printed) AND mpirun then ended the job
# with a non-zero exit (ctest's TIMEOUT 30 catches a hang). A binary that cannot start fails.
# Usage: dist_rank_dies.sh <mpiexec> <ranks> <dist_rank_dies binary>
set -uo pipefail
out=$("$1" -np "$2" --bind-to none "$3" 2>&1)
rc=$?
echo "$out" | tail -n 20
if ! grep -q "dist_rank_dies: rank 1 exits at step 2" <<<"$out"; then
  echo "dist_rank_dies.sh: rank 1 never reached its exit (did the job start?)"
  exit 1
fi
if [ "$rc" -eq 0 ]; then
  echo "dist_rank_dies.sh: mpirun exited 0 although rank 1 died"
  exit 1
fi
echo "dist_rank_dies.sh: mpirun ended the job with exit code $rc"
