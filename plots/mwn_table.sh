#!/usr/bin/env bash
# mwn_table.sh - the label-noise (Meta-Weight-Net) experiment's results table: for every method
# (in the order runs.csv first names it), the number of finished runs (seeds), mean +- sample std
# over them of the final and of the best test accuracy, the mean time per epoch and the mean and
# the largest peak RSS.
# usage: plots/mwn_table.sh results/NAME
#   reads  results/NAME/runs.csv, columns located by their header names, rows with task mwn only;
#          a run directory listed more than once (a re-run) counts once, with its last row; empty
#          or nan cells are left out of that column's statistics
#   writes results/NAME/mwn_table.csv (one row per method) and results/NAME/mwn_table.md
#          (accuracies in %), prints the Markdown, then the CSV's path
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: plots/mwn_table.sh results/NAME" >&2
    exit 2
fi
folder=${1%/}
if [ ! -f "$folder/runs.csv" ]; then
    echo "mwn_table.sh: no $folder/runs.csv" >&2
    exit 1
fi
awk -F, -v src="$folder/runs.csv" -v csv="$folder/mwn_table.csv" -v md="$folder/mwn_table.md" '
    function num(x) { return x ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ }
    # mean and sample std of column c over the runs of method k: "mean,std" ("nan,nan" if none)
    function ms(k, c,    i, d, m, v, cnt) {
        m = 0; cnt = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (meth[d] == k && num(val[d, c])) { m += val[d, c]; cnt++ }
        }
        if (cnt == 0) return "nan,nan"
        m /= cnt; v = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (meth[d] == k && num(val[d, c])) v += (val[d, c] - m) ^ 2
        }
        return sprintf("%.6f,%.6f", m, cnt > 1 ? sqrt(v / (cnt - 1)) : 0)
    }
    function maxof(k, c,    i, d, x, seen) {
        seen = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (meth[d] == k && num(val[d, c]) && (!seen || val[d, c] + 0 > x)) {
                x = val[d, c] + 0; seen = 1
            }
        }
        return seen ? sprintf("%.6f", x) : "nan"
    }
    # "85.12 ± 0.34 %" from "0.8512,0.0034"; "n/a" for nan
    function pct(s,    p) {
        split(s, p, ",")
        return num(p[1]) ? sprintf("%.2f ± %.2f %%", 100 * p[1], 100 * p[2]) : "n/a"
    }
    function fmt(f, s,    p) {
        split(s, p, ",")
        return num(p[1]) ? sprintf(f, p[1]) : "n/a"
    }
    NR == 1 {
        # columns 4.. are the statistics
        ncols = split("task method dir final_test_acc best_test_acc sec_per_epoch peak_rss_mb",
                      need, " ")
        for (i = 1; i <= NF; i++) col[$i] = i
        for (i = 1; i <= ncols; i++) {
            if (!(need[i] in col)) {
                print "mwn_table.sh: " src " has no column " need[i] > "/dev/stderr"
                bad = 1; exit 1
            }
        }
        next
    }
    $col["task"] == "mwn" {
        d = $col["dir"] != "" ? $col["dir"] : "row " NR
        if (!(d in meth)) dirs[++nd] = d
        k = $col["method"]
        meth[d] = k
        if (!(k in known)) { known[k] = 1; order[++nk] = k }
        for (i = 4; i <= ncols; i++) val[d, need[i]] = tolower($col[need[i]])
    }
    END {
        if (bad) exit 1
        if (nd == 0) {
            print "mwn_table.sh: no mwn run in " src > "/dev/stderr"
            exit 1
        }
        print "method,runs,final_test_acc_mean,final_test_acc_std,best_test_acc_mean," \
              "best_test_acc_std,sec_per_epoch_mean,peak_rss_mb_mean,peak_rss_mb_max" > csv
        print "| method | runs | final test acc | best test acc | s / epoch | " \
              "peak RSS (MB), mean / max |" > md
        print "|---|---|---|---|---|---|" > md
        for (j = 1; j <= nk; j++) {
            k = order[j]; n = 0
            for (i = 1; i <= nd; i++) if (meth[dirs[i]] == k) n++
            if (n == 0) continue
            fa = ms(k, "final_test_acc"); ba = ms(k, "best_test_acc")
            se = ms(k, "sec_per_epoch"); rs = ms(k, "peak_rss_mb"); rx = maxof(k, "peak_rss_mb")
            split(se, s, ","); split(rs, r, ",")
            print k "," n "," fa "," ba "," s[1] "," r[1] "," rx > csv
            printf "| %s | %d | %s | %s | %s | %s / %s |\n", k, n, pct(fa), pct(ba),
                   fmt("%.1f", se), fmt("%.0f", rs), fmt("%.0f", rx) > md
        }
    }' "$folder/runs.csv"
cat "$folder/mwn_table.md"
echo "$folder/mwn_table.csv"
