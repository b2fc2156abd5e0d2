#!/usr/bin/env bash
# peer.sh - our evograd-bench against its PyTorch peer (bench/peer.py), interleaved.
#
# Usage: bench/peer.sh [--rounds R] [--threads "1 2"] [--cases "resnet32 lenet mwn rotation"]
#                      [--methods "none evograd unrolled"] [--steps N] [--lft-size S]
# Cases: resnet32, lenet (method none), mwn, rotation, and lft (all three backbones) or
# lft-resnet10 / lft-resnet18 / lft-resnet34 (only when asked: slow). For each round, thread
# count, case and method, both programs run once each in their own process, with the same
# OMP/MKL/OpenBLAS thread variables, the one going first alternating per round. Prints the
# per-round rows (CSV) as they come, then a Markdown table per (case, method, threads): the
# medians over rounds and the median and min-max of the per-round ratios ours / PyTorch.
# EVOGRAD_BENCH=path picks our binary (default build/release/evograd-bench); the benches' own
# stderr goes to a log, shown when a run fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench=${EVOGRAD_BENCH:-$root/build/release/evograd-bench}
python=${PEER_PYTHON:-/usr/bin/python3} # Debian's, which has torch (PEER_PYTHON: for tests)
rounds=3
threads="1 2"
cases="resnet32 lenet mwn rotation"
methods="none evograd unrolled"
steps=""
lft_size=224

usage() {
    sed -n '4,5p' "$0" | sed 's/^# //' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --rounds) rounds=$2 ;;
    --threads) threads=$2 ;;
    --cases) cases=$2 ;;
    --methods) methods=$2 ;;
    --steps) steps=$2 ;;
    --lft-size) lft_size=$2 ;;
    *) usage ;;
    esac
    shift 2
done

if ! "$python" -c 'import torch' 2>/dev/null; then
    echo "bench-peer needs Debian's PyTorch: apt-get install --no-install-recommends python3-torch" >&2
    exit 2
fi
if [ ! -x "$bench" ]; then
    echo "peer.sh: $bench not found: run make build/release/evograd-bench (or set EVOGRAD_BENCH=path)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
rows=$tmp/rows.csv
log=$tmp/log

# case names -> the list of CSV case names (lft expands to its three backbones)
list=""
for c in $cases; do
    case $c in
    resnet32 | lenet | mwn | rotation | lft-resnet10 | lft-resnet18 | lft-resnet34) list="$list $c" ;;
    lft) list="$list lft-resnet10 lft-resnet18 lft-resnet34" ;;
    *) echo "peer.sh: unknown case '$c'" >&2; exit 2 ;;
    esac
done

# run_ours CASE METHOD T / run_torch CASE METHOD T: print "ms,rss" of the data row
run_ours() {
    local c=$1 m=$2 t=$3
    shift 3
    set -- ${steps:+--steps "$steps"}
    case $c in
    lft-*) set -- --case lft --lft-backbone "${c#lft-}" --lft-size "$lft_size" "$@" ;;
    *) set -- --case "$c" "$@" ;;
    esac
    OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
        "$bench" --csv --method "$m" --threads "$t" "$@" >"$tmp/out" 2>>"$log" || return 1
    awk -F, -v c="$c" -v m="$m" '$1 == c && $2 == m { print $4 "," $5 }' "$tmp/out"
}
run_torch() {
    local c=$1 m=$2 t=$3
    shift 3
    set -- ${steps:+--steps "$steps"}
    case $c in
    lft-*) set -- --case lft --backbone "${c#lft-}" --lft-size "$lft_size" "$@" ;;
    *) set -- --case "$c" "$@" ;;
    esac
    OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
        "$python" "$root/bench/peer.py" --method "$m" --threads "$t" "$@" >"$tmp/out" 2>>"$log" ||
        return 1
    awk -F, -v c="$c" -v m="$m" '$1 == c && $2 == m { print $4 "," $5 }' "$tmp/out"
}
fail() {
    echo "peer.sh: $1 failed; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
}

echo "round,case,method,threads,ours_ms,torch_ms,ratio,ours_rss_mb,torch_rss_mb,rss_ratio"
r=1
while [ "$r" -le "$rounds" ]; do
    for t in $threads; do
        for c in $list; do
            case $c in resnet32 | lenet) mlist="none" ;; *) mlist=$methods ;; esac
            for m in $mlist; do
                if [ $((r % 2)) -eq 1 ]; then
                    ours=$(run_ours "$c" "$m" "$t") || fail "ours $c $m"
                    torch=$(run_torch "$c" "$m" "$t") || fail "peer.py $c $m"
                else
                    torch=$(run_torch "$c" "$m" "$t") || fail "peer.py $c $m"
                    ours=$(run_ours "$c" "$m" "$t") || fail "ours $c $m"
                fi
                [ -n "$ours" ] || fail "ours $c $m (no CSV row)"
                [ -n "$torch" ] || fail "peer.py $c $m (no CSV row)"
                echo "$r,$c,$m,$t,$ours,$torch" | awk -F, -v OFS=, \
                    '{ printf "%s,%s,%s,%s,%s,%s,%.3f,%s,%s,%.3f\n", $1, $2, $3, $4, $5, $7,
                       $5 / $7, $6, $8, $6 / $8 }' | tee -a "$rows"
            done
        done
    done
    r=$((r + 1))
done

# The table: medians over rounds (POSIX sort + awk).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() { # col KEY N: column N of the rows of key "case,method,threads"
    awk -F, -v k="$1" -v n="$2" '$2 "," $3 "," $4 == k { print $n }' "$rows"
}
echo
echo "| case | method | threads | ours ms | PyTorch ms | time ours/PyTorch | (min-max) | ours RSS MB | PyTorch RSS MB | RSS ours/PyTorch | (min-max) |"
echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|"
awk -F, '!seen[$2 "," $3 "," $4]++ { print $2 "," $3 "," $4 }' "$rows" | while IFS= read -r key; do
    om=$(col "$key" 5 | median)
    tm=$(col "$key" 6 | median)
    rm_=$(col "$key" 7 | median)
    rlo=$(col "$key" 7 | sort -g | head -n 1)
    rhi=$(col "$key" 7 | sort -g | tail -n 1)
    orss=$(col "$key" 8 | median)
    trss=$(col "$key" 9 | median)
    sm=$(col "$key" 10 | median)
    slo=$(col "$key" 10 | sort -g | head -n 1)
    shi=$(col "$key" 10 | sort -g | tail -n 1)
    echo "$key" | awk -F, -v om="$om" -v tm="$tm" -v rm="$rm_" -v rlo="$rlo" -v rhi="$rhi" \
        -v orss="$orss" -v trss="$trss" -v sm="$sm" -v slo="$slo" -v shi="$shi" \
        '{ printf "| %s | %s | %s | %.1f | %.1f | %.2fx | %.2f-%.2f | %.0f | %.0f | %.2fx | %.2f-%.2f |\n",
           $1, $2, $3, om, tm, rm, rlo, rhi, orss, trss, sm, slo, shi }'
done

# What each side said about its networks (parameter counts, GFLOP), once per case and method.
echo >&2
grep -E '^peer |^ *parameters [1-9]|[0-9] parameters,' "$log" | awk '!seen[$1 " " $2 " " $3]++' >&2 || true
