#!/usr/bin/env bash
# sweep.sh - sweep figures from a runs table: a metric against a varied key (plots/sweep.gp, one
# line per group of the other varied keys, mean ± std over seeds as error bars).
# usage: plots/sweep.sh SOURCE --x KEY [--y METRIC] [--where KEY=VALUE ...] [--out FILE]
#        plots/sweep.sh SOURCE --all [--where KEY=VALUE ...]
#   SOURCE  a results folder or its runs.csv (evograd table reads it; a re-run counts once)
#   --y     the metric column (default final_test_acc; *_acc columns are drawn in %)
#   --out   the figure's path, with the format's extension (default SOURCE's folder/sweep_KEY)
#   --all   per task in the table (rotation, mwn, lft, supervised), a figure of final_test_acc
#           against every numeric config key that varies across its rows: <folder>/sweep_<KEY>,
#           or <folder>/sweep_<TASK>_<KEY> when the table holds runs of more than one task
#   FORMAT=png|pdf|svg, NOTITLE=1 and EVOGRAD (default build/evograd) from the environment
#   writes the figure(s), and prints each path
set -euo pipefail
usage() {
    echo "usage: plots/sweep.sh SOURCE --x KEY [--y METRIC] [--where KEY=VALUE ...] [--out FILE]" >&2
    echo "       plots/sweep.sh SOURCE --all [--where KEY=VALUE ...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
source=$1; shift
x=""; y=final_test_acc; out=""; all=0; where=()
while [ $# -gt 0 ]; do
    case $1 in
        --x) [ $# -ge 2 ] || usage; x=$2; shift 2 ;;
        --y) [ $# -ge 2 ] || usage; y=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --where) [ $# -ge 2 ] || usage; where+=(--where "$2"); shift 2 ;;
        --all) all=1; shift ;;
        *) usage ;;
    esac
done
[ "$all" = 1 ] || [ -n "$x" ] || usage
evograd=${EVOGRAD:-build/evograd}
format=${FORMAT:-png}
folder=$source
[ -d "$folder" ] || folder=$(dirname "$source")
folder=${folder%/}

# draws METRIC against KEY of the rows the arguments after them select, into BASE.<format>
draw() {
    local key=$1 metric=$2 base=$3; shift 3
    local data scale=1 label=$metric
    data=$(mktemp)
    trap 'rm -f "$data"' RETURN
    "$evograd" table "$source" "$@" --format csv --x "$key" --metric "$metric" > "$data"
    case $metric in
        *_acc|*_acc_*|*acc) scale=100; label="$metric (%)" ;;
    esac
    gnuplot -e "data='$data'; x='$key'; y='$metric'; out='$base'; scale=$scale" \
            -e "ylabel='$label'; format='$format'" \
            ${NOTITLE:+-e "notitle=$NOTITLE"} plots/sweep.gp
    echo "$base.$format"
}

if [ "$all" = 0 ]; then
    if [ -z "$out" ]; then
        base="$folder/sweep_$x"
    else
        base=${out%.*}
        format=${out##*.}
        [ "$format" != "$out" ] || format=${FORMAT:-png}
    fi
    draw "$x" "$y" "$base" "${where[@]}"
    exit 0
fi
# the tasks with rows; with more than one, each figure's name carries its task too
tasks=()
for task in supervised rotation mwn lft; do
    rows=$({ "$evograd" table "$source" "${where[@]}" --where "task=$task" --format csv 2>/dev/null || true; } | wc -l)
    [ "$rows" -gt 1 ] && tasks+=("$task")
done
for task in "${tasks[@]}"; do
    prefix=sweep_
    [ ${#tasks[@]} -gt 1 ] && prefix=sweep_${task}_
    for key in $("$evograd" table "$source" "${where[@]}" --where "task=$task" --keys numeric); do
        draw "$key" final_test_acc "$folder/$prefix$key" "${where[@]}" --where "task=$task"
    done
done
