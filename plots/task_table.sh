#!/usr/bin/env bash
# task_table.sh - a task's results table, through `evograd table` (runner/table_cmd.c): the
# folder's runs of that task grouped by every config key that varies across them (never the
# seed), n and each metric's mean ± sample std over the group's seeds. Values are as runs.csv
# holds them: accuracies are fractions (0.8512), not %.
# usage: plots/task_table.sh TASK results/NAME METRIC...   (plots/{rotation,mwn,lft}_table.sh)
#   reads  results/NAME/runs.csv, columns by name, rows with task TASK; a run folder listed more
#          than once (a re-run) counts once, with its last row; empty or nan cells are left out
#   writes results/NAME/TASK_table.md (Markdown) and results/NAME/TASK_table.csv (evograd
#          table --format csv: group label, the varied keys, n, <metric>_mean, <metric>_std),
#          prints the Markdown, then the CSV's path
#   EVOGRAD names the binary (default build/evograd)
set -euo pipefail
if [ $# -lt 3 ] || [ -z "$2" ]; then
    echo "usage: plots/task_table.sh TASK results/NAME METRIC..." >&2
    exit 2
fi
task=$1 folder=${2%/}
shift 2
evograd=${EVOGRAD:-build/evograd}
metrics=()
for m in "$@"; do metrics+=(--metric "$m"); done
"$evograd" table "$folder" --where "task=$task" "${metrics[@]}" > "$folder/${task}_table.md"
"$evograd" table "$folder" --where "task=$task" "${metrics[@]}" --format csv \
    > "$folder/${task}_table.csv"
cat "$folder/${task}_table.md"
echo "$folder/${task}_table.csv"
