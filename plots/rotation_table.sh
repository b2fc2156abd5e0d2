#!/usr/bin/env bash
# rotation_table.sh - the rotation experiment's results table (paper-spec 3.2), per group of
# varied config keys: n, mean ± std over seeds of final_test_acc (rotated test set),
# test_acc_back (test images rotated back by the learned angle) and angle_deg (the learned
# angle, degrees); accuracies as fractions. plots/task_table.sh says what it reads and writes:
# results/NAME/rotation_table.{md,csv}.
# usage: plots/rotation_table.sh results/NAME
exec bash "$(dirname "$0")/task_table.sh" rotation "${1:-}" final_test_acc test_acc_back angle_deg
