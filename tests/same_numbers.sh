#!/usr/bin/env bash
# same_numbers.sh - proves that a change keeps every number the same (a redesign, a refactor).
#
#   tests/same_numbers.sh run EVOGRAD_BIN OUT_DIR    run the fixed set below into OUT_DIR/<case>/
#   tests/same_numbers.sh compare DIR_BEFORE DIR_AFTER
# SAME_NUMBERS_OVERRIDES="key=value ..." adds overrides to every run (for example
# conv_backend=im2col, to compare a build that has the key with one from before it).
# SAME_NUMBERS_BIN=BIN (compare): a config.yaml whose text differs passes when `BIN check`
# prints both the same (a change of how config.yaml is written, not of what it says).
#
# Before the change: build, `run build/release/evograd /tmp/before`, and keep a copy of the binary
# if you want to run it again later. After: `run` into another folder, then `compare`. compare
# checks every CSV of every case cell by cell (the timing and memory columns wall_s, sec_per_step,
# sec_per_epoch, peak_rss_mb and the dir column aside), config.yaml byte for byte, and that both
# sides hold the same files; it prints one line per difference and exits 1 if there is any.
#
# The set: configs/default.yaml (one short epoch), every config in configs/smoke/ under each
# method, mwn's uniform-weights baseline, configs/paper/toy1d.yaml for each method and K 2/10,
# and per task one run stopped after a few steps and resumed (it must equal the uninterrupted
# run of the same case, which compare checks too). Everything with threads=1, about 4 minutes.
set -euo pipefail

usage() {
    sed -n '2,5p' "$0" >&2
    exit 2
}

run_set() {
    local bin=$1 out=$2
    mkdir -p "$out"
    # the runs table every case appends to (a build before --runs put it beside --out anyway)
    local runs=()
    # (the help read whole first: grep -q stopping early would kill the writer under pipefail)
    local help
    help=$("$bin" --help 2>&1)
    if grep -q -- '--runs FILE' <<<"$help"; then runs=(--runs "$out/runs.csv"); fi
    local extra=()
    read -r -a extra <<<"${SAME_NUMBERS_OVERRIDES:-}"
    one() { # one CASE CONFIG [overrides...]
        local name=$1
        shift
        "$bin" run "$@" "${extra[@]}" threads=1 --out "$out/$name" "${runs[@]}" --quiet >/dev/null
    }
    resumed() { # resumed CASE STEPS CONFIG [overrides...]: stopped after STEPS, then resumed
        local name=$1 steps=$2
        shift 2
        "$bin" run "$@" "${extra[@]}" threads=1 --out "$out/$name" "${runs[@]}" --quiet --stop-after "$steps" >/dev/null
        "$bin" run "$@" "${extra[@]}" threads=1 --out "$out/$name" "${runs[@]}" --quiet --resume >/dev/null
    }
    one default configs/default.yaml train.epochs=1 data.train_size=3000
    resumed default-resumed 7 configs/default.yaml train.epochs=1 data.train_size=3000
    for m in none evograd unrolled; do
        one "rotation-$m" configs/smoke/rotation.yaml method.name=$m
        one "mwn-$m" configs/smoke/mwn.yaml method.name=$m
        one "lft-$m" configs/smoke/lft.yaml method.name=$m
        one "toy1d-$m" configs/paper/toy1d.yaml method.name=$m
    done
    one toy1d-evograd-K10 configs/paper/toy1d.yaml method.candidates=10
    one mwn-uniform configs/smoke/mwn.yaml method.name=none mwn.uniform_weights=true
    resumed rotation-evograd-resumed 20 configs/smoke/rotation.yaml method.name=evograd
    resumed mwn-evograd-resumed 250 configs/smoke/mwn.yaml method.name=evograd
    resumed lft-evograd-resumed 13 configs/smoke/lft.yaml method.name=evograd
}

# compare_csv A B: cell by cell, columns named in SKIP aside.
compare_csv() {
    awk -F, -v fa="$1" -v fb="$2" '
        BEGIN { skip["wall_s"]; skip["sec_per_step"]; skip["sec_per_epoch"]; skip["peak_rss_mb"]
                skip["dir"]; bad = 0 }
        FNR == NR { a[FNR] = $0; na = FNR; next }
        {
            b[FNR] = $0; nb = FNR
        }
        END {
            if (na != nb) { printf "%s: %d rows, %s: %d rows\n", fa, na, fb, nb; bad = 1 }
            n = split(a[1], head, ",")
            if (a[1] != b[1]) { printf "%s: header differs from %s\n", fa, fb; exit 1 }
            for (r = 2; r <= (na < nb ? na : nb); r++) {
                split(a[r], x, ","); split(b[r], y, ",")
                for (c = 1; c <= n; c++) {
                    if (head[c] in skip) continue
                    if (x[c] != y[c]) {
                        printf "%s row %d %s: %s vs %s\n", fa, r - 1, head[c], x[c], y[c]; bad = 1
                    }
                }
            }
            exit bad
        }' "$1" "$2"
}

compare_sets() {
    local before=$1 after=$2 bad=0 resolved=0
    for dir in "$before"/*/ "$after"/*/; do
        local case
        case=$(basename "$dir")
        [ -d "$before/$case" ] && [ -d "$after/$case" ] || {
            echo "$case: only on one side"
            bad=1
        }
    done
    for dir in "$before"/*/; do
        local case
        case=$(basename "$dir")
        [ -d "$after/$case" ] || continue
        local fa fb
        fa=$(cd "$before/$case" && ls | grep -v '^checkpoint' | sort | tr '\n' ' ')
        fb=$(cd "$after/$case" && ls | grep -v '^checkpoint' | sort | tr '\n' ' ')
        [ "$fa" = "$fb" ] || {
            echo "$case: files differ: [$fa] vs [$fb]"
            bad=1
        }
        for f in "$before/$case"/*.csv; do
            [ -f "$after/$case/$(basename "$f")" ] || continue
            compare_csv "$f" "$after/$case/$(basename "$f")" || bad=1
        done
        # byte for byte; or, with SAME_NUMBERS_BIN, the same config as that binary resolves it
        # (a change of how config.yaml is written: evograd check prints both the same)
        if ! cmp -s "$before/$case/config.yaml" "$after/$case/config.yaml"; then
            if [ -n "${SAME_NUMBERS_BIN:-}" ] &&
                cmp -s <("$SAME_NUMBERS_BIN" check "$before/$case/config.yaml" 2>&1) \
                    <("$SAME_NUMBERS_BIN" check "$after/$case/config.yaml" 2>&1); then
                resolved=$((resolved + 1))
            else
                echo "$case: config.yaml differs"
                bad=1
            fi
        fi
    done
    # the runs.csv both sets appended to (one row per finished run, in the same order)
    if [ -f "$before/runs.csv" ] || [ -f "$after/runs.csv" ]; then
        compare_csv "$before/runs.csv" "$after/runs.csv" || bad=1
    fi
    # a resumed run equals its uninterrupted twin (in the after set)
    for r in "$after"/*-resumed; do
        [ -d "$r" ] || continue
        local twin=${r%-resumed}
        [ -d "$twin" ] || continue
        for f in "$twin"/*.csv; do
            compare_csv "$f" "$r/$(basename "$f")" || bad=1
        done
    done
    local n
    n=$(ls -d "$before"/*/ | wc -l)
    if [ "$bad" -eq 0 ]; then
        echo "same numbers: $n cases, every CSV cell and config.yaml identical (timing columns aside)"
        [ "$resolved" -eq 0 ] || echo "  ($resolved config.yaml files differ in text only:" \
            "$SAME_NUMBERS_BIN check resolves each pair the same)"
    fi
    return "$bad"
}

[ $# -eq 3 ] || usage
case $1 in
run) run_set "$2" "$3" ;;
compare) compare_sets "$2" "$3" ;;
*) usage ;;
esac
