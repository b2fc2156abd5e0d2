#!/usr/bin/env bash
# rotation_table.sh - the rotation experiment's results table (paper-spec 3.2): for every method,
# mean +- sample std over the finished runs (seeds) of the final test_acc (rotated test set),
# test_acc_back (test images rotated back by -a) and angle_deg (the learned angle).
# usage: plots/rotation_table.sh results/NAME
#   reads  results/NAME/*/config.yaml (task rotation only) and the last row of */metrics.csv of
#          runs with DONE
#   writes results/NAME/rotation_table.csv and results/NAME/rotation_table.md (and prints the
#          Markdown)
set -euo pipefail
folder=${1:?usage: plots/rotation_table.sh results/NAME}
folder=${folder%/}
rows=""
for d in "$folder"/*/; do
    d=${d%/}
    [ -f "$d/metrics.csv" ] && [ -f "$d/DONE" ] && [ -f "$d/config.yaml" ] || continue
    grep -q '^task: rotation$' "$d/config.yaml" || continue
    method=$(awk '/^method:/ {m = 1; next} /^[^ ]/ {m = 0} m && /^  name:/ {print $2; exit}' \
        "$d/config.yaml")
    last=$(tail -n 1 "$d/metrics.csv")
    rows+="$method,$last"$'\n'
done
if [ -z "$rows" ]; then
    echo "rotation_table.sh: no finished rotation run under $folder" >&2
    exit 1
fi
# metrics.csv columns: 6 test_acc, 10 angle_deg, 11 test_acc_back (+1 for the method in front)
printf '%s' "$rows" | awk -F, -v csv="$folder/rotation_table.csv" -v md="$folder/rotation_table.md" '
    function ms(sum, sq, n,    m, v) {
        m = sum / n
        v = n > 1 ? (sq - n * m * m) / (n - 1) : 0
        if (v < 0) v = 0
        return sprintf("%.6f,%.6f", m, sqrt(v))
    }
    {
        k = $1
        if (!(k in n)) order[++nk] = k
        n[k]++
        a[k] += $7; a2[k] += $7 * $7
        b[k] += $12; b2[k] += $12 * $12
        g[k] += $11; g2[k] += $11 * $11
    }
    END {
        print "method,runs,test_acc_mean,test_acc_std,test_acc_back_mean,test_acc_back_std," \
              "angle_deg_mean,angle_deg_std" > csv
        print "| method | runs | test acc (rotated) | test acc (rotated back) | angle (deg) |" > md
        print "|---|---|---|---|---|" > md
        for (i = 1; i <= nk; i++) {
            k = order[i]
            print k "," n[k] "," ms(a[k], a2[k], n[k]) "," ms(b[k], b2[k], n[k]) "," \
                  ms(g[k], g2[k], n[k]) > csv
            split(ms(a[k], a2[k], n[k]), x, ","); split(ms(b[k], b2[k], n[k]), y, ",")
            split(ms(g[k], g2[k], n[k]), z, ",")
            printf "| %s | %d | %.2f ± %.2f %% | %.2f ± %.2f %% | %.2f ± %.2f |\n", k, n[k],
                   100 * x[1], 100 * x[2], 100 * y[1], 100 * y[2], z[1], z[2] > md
        }
    }'
cat "$folder/rotation_table.md"
echo "$folder/rotation_table.csv"
