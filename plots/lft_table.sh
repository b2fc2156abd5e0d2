#!/usr/bin/env bash
# lft_table.sh - the cross-domain few-shot (learned feature-wise transformation) results table,
# per group of varied config keys (the unseen domain lft.unseen and lft.shot among them when a
# folder mixes them): n, mean ± std over seeds of the unseen domain's test accuracy
# (final_test_acc, a fraction) and of each run's own 95% confidence interval over its test
# episodes (test_acc_ci95), seconds per step and peak RSS (MB). plots/task_table.sh says what it
# reads and writes: results/NAME/lft_table.{md,csv}.
# usage: plots/lft_table.sh results/NAME
exec bash "$(dirname "$0")/task_table.sh" lft "${1:-}" final_test_acc test_acc_ci95 sec_per_step \
    peak_rss_mb
