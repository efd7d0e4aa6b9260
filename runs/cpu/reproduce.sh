#!/bin/sh
# Runs the five CPU reproductions into runs/results/cpu/ (about 20 minutes on 2 cores), then
# regenerates runs/results/REPORT.md and its figures from them (a report of OTHER_RESULTS_DIR
# alone goes beside it, in report/). Checkpoints and keras-tuner's
# resume state are deleted at the end to keep the committed results small; everything the report
# uses stays (flags.txt, metrics.csv, result.json, predictions.npz, trials.csv).
#
#   sh runs/cpu/reproduce.sh            # or: sh runs/cpu/reproduce.sh OTHER_RESULTS_DIR
set -e
out=${1:-runs/results/cpu}
for grid in paper1_digits_beta_grid paper1_digits_logit_norm_grid paper2_digits_decay_grid \
            paper3_synthetic_temperature_grid; do
  python -m tc.tune --flagfile=runs/cpu/$grid.cfg --output_dir=$out/$grid
done
for seed in 0 1 2; do
  python -m tc.train --flagfile=runs/cpu/paper2_digits_warmup.cfg --seed=$seed --verbose=0 \
    --output_dir=$out/paper2_digits_warmup/seed$seed
done
find "$out" \( -name checkpoints -o -name tuner \) -type d -prune -exec rm -rf {} +
if [ "$out" = runs/results/cpu ]; then
  python -m tc.analysis.report --flagfile=runs/report.cfg  # the repository's report
else
  python -m tc.analysis.report --runs="$out" --out="$(dirname "$out")/report"
fi
