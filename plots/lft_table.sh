#!/usr/bin/env bash
# lft_table.sh - the cross-domain few-shot (learned feature-wise transformation) results table:
# for every method (in the order runs.csv first names it; split by unseen domain and shot when a
# folder mixes them), the number of finished runs (seeds), the test accuracy on the unseen domain,
# the mean time per step and the largest peak RSS. Test accuracy: of one run, its mean over the
# test episodes +- its own 95% confidence interval; of several runs, the mean over the runs +- the
# sample std across them, with the runs' mean 95% interval beside it.
# usage: plots/lft_table.sh results/NAME
#   reads  results/NAME/runs.csv, columns located by their header names, rows with task lft only;
#          a run directory listed more than once (a re-run) counts once, with its last row; empty
#          or nan cells are left out of that column's statistics. The unseen domain and the shot
#          come from results/NAME/<run>/config.yaml (lft.unseen, lft.shot): when all configs
#          agree, every row has theirs; else each run its own ("?" when its config is gone).
#   writes results/NAME/lft_table.csv (one row per method, unseen domain and shot) and
#          results/NAME/lft_table.md (accuracies in %), prints the Markdown, then the CSV's path
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: plots/lft_table.sh results/NAME" >&2
    exit 2
fi
folder=${1%/}
if [ ! -f "$folder/runs.csv" ]; then
    echo "lft_table.sh: no $folder/runs.csv" >&2
    exit 1
fi
# "run-dir-name,unseen,shot" of every lft run directory under the folder
settings=""
for d in "$folder"/*/; do
    d=${d%/}
    [ -f "$d/config.yaml" ] || continue
    grep -q '^task: lft$' "$d/config.yaml" || continue
    settings+=$(awk -v name="${d##*/}" '/^lft:/ {m = 1; next} /^[^ ]/ {m = 0}
        m && /^  unseen:/ {u = $2} m && /^  shot:/ {s = $2}
        END {print name "," (u == "" ? "?" : u) "," (s == "" ? "?" : s)}' "$d/config.yaml")$'\n'
done
SETTINGS=$settings awk -F, -v src="$folder/runs.csv" -v csv="$folder/lft_table.csv" \
    -v md="$folder/lft_table.md" '
    function num(x) { return x ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ }
    # count, mean and sample std of column c over the runs of group k: "n,mean,std" (the std nan
    # for fewer than 2 values, the mean too for none)
    function ms(k, c,    i, d, m, v, cnt) {
        m = 0; cnt = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (grp[d] == k && num(val[d, c])) { m += val[d, c]; cnt++ }
        }
        if (cnt == 0) return "0,nan,nan"
        m /= cnt; v = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (grp[d] == k && num(val[d, c])) v += (val[d, c] - m) ^ 2
        }
        return sprintf("%d,%.6f,%s", cnt, m, cnt > 1 ? sprintf("%.6f", sqrt(v / (cnt - 1))) : "nan")
    }
    function maxof(k, c,    i, d, x, seen) {
        seen = 0
        for (i = 1; i <= nd; i++) {
            d = dirs[i]
            if (grp[d] == k && num(val[d, c]) && (!seen || val[d, c] + 0 > x)) {
                x = val[d, c] + 0; seen = 1
            }
        }
        return seen ? sprintf("%.6f", x) : "nan"
    }
    # the last path component of a run directory
    function base(p,    q) { q = p; sub(/\/+$/, "", q); sub(/.*\//, "", q); return q }
    BEGIN {
        # the settings from the environment, lines "run-dir-name,unseen,shot"
        ns = split(ENVIRON["SETTINGS"], lines, "\n")
        for (i = 1; i <= ns; i++) {
            if (split(lines[i], f, ",") == 3) {
                unseen[f[1]] = f[2]; shot[f[1]] = f[3]
                if (!((f[2], f[3]) in distinct)) { distinct[f[2], f[3]] = 1; nset++ }
                common_u = f[2]; common_s = f[3]
            }
        }
        # one setting in the folder: every run has it (also one whose directory is gone)
        if (nset != 1) { common_u = "?"; common_s = "?" }
    }
    NR == 1 {
        # columns 4.. are the statistics
        ncols = split("task method dir final_test_acc test_acc_ci95 sec_per_step peak_rss_mb",
                      need, " ")
        for (i = 1; i <= NF; i++) col[$i] = i
        for (i = 1; i <= ncols; i++) {
            if (!(need[i] in col)) {
                print "lft_table.sh: " src " has no column " need[i] > "/dev/stderr"
                bad = 1; exit 1
            }
        }
        next
    }
    $col["task"] == "lft" {
        d = $col["dir"] != "" ? $col["dir"] : "row " NR
        if (!(d in grp)) dirs[++nd] = d
        b = base(d)
        u = nset == 1 ? common_u : (b in unseen) ? unseen[b] : "?"
        s = nset == 1 ? common_s : (b in shot) ? shot[b] : "?"
        k = $col["method"] SUBSEP u SUBSEP s
        grp[d] = k
        if (!(k in known)) { known[k] = 1; order[++nk] = k }
        for (i = 4; i <= ncols; i++) val[d, need[i]] = tolower($col[need[i]])
    }
    END {
        if (bad) exit 1
        if (nd == 0) {
            print "lft_table.sh: no lft run in " src > "/dev/stderr"
            exit 1
        }
        print "method,unseen,shot,runs,test_acc_mean,test_acc_std,test_ci95_mean," \
              "sec_per_step_mean,peak_rss_mb_max" > csv
        print "| method | unseen domain | shot | runs | test acc | mean 95% CI | s / step | " \
              "peak RSS (MB, max) |" > md
        print "|---|---|---|---|---|---|---|---|" > md
        for (j = 1; j <= nk; j++) {
            k = order[j]; n = 0
            for (i = 1; i <= nd; i++) if (grp[dirs[i]] == k) n++
            if (n == 0) continue
            split(k, key, SUBSEP)
            split(ms(k, "final_test_acc"), a, ","); split(ms(k, "test_acc_ci95"), c, ",")
            split(ms(k, "sec_per_step"), t, ","); rx = maxof(k, "peak_rss_mb")
            print key[1] "," key[2] "," key[3] "," n "," a[2] "," a[3] "," c[2] "," t[2] "," \
                  rx > csv
            # one accuracy: +- its own 95% interval; several: +- the std across the runs
            if (a[1] == 0) acc = "n/a"
            else if (a[1] == 1)
                acc = num(c[2]) ? sprintf("%.2f ± %.2f %% (95%% CI)", 100 * a[2], 100 * c[2]) \
                                : sprintf("%.2f %%", 100 * a[2])
            else acc = sprintf("%.2f ± %.2f %% (std, %d runs)", 100 * a[2], 100 * a[3], a[1])
            if (a[1] > 0 && a[1] < n)
                acc = acc sprintf(" [%d of %d runs with a test accuracy]", a[1], n)
            printf "| %s | %s | %s | %d | %s | %s | %s | %s |\n", key[1], key[2], key[3], n, acc,
                   num(c[2]) ? sprintf("± %.2f %%", 100 * c[2]) : "n/a",
                   num(t[2]) ? sprintf("%.3f", t[2]) : "n/a",
                   num(rx) ? sprintf("%.0f", rx) : "n/a" > md
        }
    }' "$folder/runs.csv"
cat "$folder/lft_table.md"
echo "$folder/lft_table.csv"
