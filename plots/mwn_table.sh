#!/usr/bin/env bash
# mwn_table.sh - the label-noise (Meta-Weight-Net) experiment's results table, per group of
# varied config keys: n, mean ± std over seeds of the final and the best test accuracy
# (fractions), seconds per epoch and peak RSS (MB). plots/task_table.sh says what it reads and
# writes: results/NAME/mwn_table.{md,csv}.
# usage: plots/mwn_table.sh results/NAME
exec bash "$(dirname "$0")/task_table.sh" mwn "${1:-}" final_test_acc best_test_acc sec_per_epoch \
    peak_rss_mb
