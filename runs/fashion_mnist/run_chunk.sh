#!/usr/bin/env bash
# Runs the programs of one chunk of the Fashion-MNIST campaign (see PLAN.md) that are not done.
#
#   bash runs/fashion_mnist/run_chunk.sh runs/fashion_mnist/chunk1.txt 540
#
# A program is skipped when its estimated seconds no longer fit in the budget, and stopped at the
# budget's end; only a program that exits 0 (completed) or 3 (a copy diverged) is marked DONE.
# Each command, its exit status, wall time and GPU go to runs/results/fashion_mnist/LOG.md.
# DATA_DIR (default: the packaged folder) is passed as --data_dir; EXTRA_FLAGS go last.
set -u
chunk=$1
budget=${2:-540}
results=${RESULTS:-runs/results/fashion_mnist}
log=$results/LOG.md
start=$(date +%s)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
gpu=${gpu:-CPU}
mkdir -p "$results"
[ -f "$log" ] || printf '| finished (UTC) | command | exit | wall | device |\n| --- | --- | --- | --- | --- |\n' > "$log"
while read -r name seed estimate; do
  case "$name" in ""|\#*) continue ;; esac
  out=$results/$name/seed$seed
  [ -f "$out/DONE" ] && { echo "done already: $name seed $seed"; continue; }
  left=$((budget - $(date +%s) + start))
  if [ "$left" -lt "$estimate" ]; then
    echo "skipped: $name seed $seed ($left s left, $estimate s estimated)"
    continue
  fi
  rm -rf "$out"  # what an unfinished earlier attempt left; its checkpoints did not travel
  command="python -m tc.train --flagfile=runs/fashion_mnist/$name.cfg --seed=$seed --output_dir=$out${DATA_DIR:+ --data_dir=$DATA_DIR}${EXTRA_FLAGS:+ $EXTRA_FLAGS}"
  echo "$command"
  began=$(date +%s)
  timeout "$left" $command
  status=$?
  echo "| $(date -u +%Y-%m-%dT%H:%M:%SZ) | \`$command\` | $status | $(( $(date +%s) - began )) s | $gpu |" >> "$log"
  if [ "$status" -eq 0 ] || [ "$status" -eq 3 ]; then
    # Checkpoints, and the per-epoch files that example_learning.npz gathers, stay behind.
    find "$out" \( -name checkpoints -o -name example_learning \) -type d -prune -exec rm -rf {} +
    find "$out" -name model.keras -type f -delete  # the trained models stay on the GPU machine
    touch "$out/DONE"
  else
    rm -rf "$out"
  fi
done < "$chunk"
