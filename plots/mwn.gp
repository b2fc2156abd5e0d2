# mwn.gp - the label-noise experiment (Meta-Weight-Net): every mwn run under a folder, one line
# per run ("method seed N" in the key), one colour per method.
# usage: gnuplot -e "folder='results/mwn'" plots/mwn.gp
#   reads  <folder>/*/metrics.csv (columns by name: epoch, test_acc, w_clean, w_noisy; empty or
#          nan cells are missing data) and <folder>/*/weight_curve.csv (loss,weight) of runs
#          whose config.yaml says task: mwn
#   writes <folder>/mwn_accuracy.png  test accuracy per epoch
#          <folder>/mwn_weights.png   mean weight of the clean (solid) and of the corrupted
#                                     (dashed) training samples per epoch
#          <folder>/mwn_curve.png     the learned weighting function, weight against loss, of
#                                     the runs with a weight_curve.csv (uniform weights have none)
#          A figure without data (no weights logged, no curve) says so instead of failing.
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/mwn.gp"
    exit status 2
}
runs = system("for d in '".folder."'/*/; do [ -f \"$d/metrics.csv\" ] || continue; " . \
              "grep -q '^task: mwn$' \"$d/config.yaml\" 2>/dev/null || continue; " . \
              "echo \"${d%/}\"; done | sort -V")
n = words(runs)
if (n == 0) { print "mwn.gp: no mwn run under ".folder; exit status 1 }

cfgval(d, sec, key) = system("awk '/^".sec.":/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                             "m && /^  ".key.":/ {print $2; exit}' '".d."/config.yaml'")
topval(d, key) = system("awk '/^".key.":/ {print $2; exit}' '".d."/config.yaml'")
# "unif label noise, rate 0.4" from data.noise in config.yaml
noiseof(d) = system("awk '/^data:/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                    "m && /^  noise:/ {k = 1; next} m && /^  [^ ]/ {k = 0} " . \
                    "k && /^    type:/ {t = $2} k && /^    rate:/ {r = $2} " . \
                    "END {if (t == \"\" || t == \"none\") print \"no label noise\"; " . \
                    "else print t \" label noise, rate \" r}' '".d."/config.yaml'")
# 1 when column col of CSV file f has a value (neither empty nor nan) in some data row, else 0
hasval(f, col) = system("awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) " . \
                        "if ($i == \"".col."\") c = i; next} " . \
                        "c && $c != \"\" && tolower($c) !~ /nan/ {found = 1; exit} " . \
                        "END {print found + 0}' '".f."'")
# one colour per method; point types tell the seeds of a method apart
mcol(m) = m eq "evograd" ? "#1f77b4" : m eq "unrolled" ? "#d62728" : \
          m eq "none" ? "#555555" : "#2ca02c"
ptypes = "7 5 9 11 13 6 4 8 10 12"

# per run: method, seed and point type; lists of the runs (indices) with test accuracies, with
# clean and with corrupted sample weights, and with a weighting curve
methods = ""; seeds = ""; pts = ""; accs = ""; wclean = ""; wnoisy = ""; curves = ""
dataset = ""; noise = ""   # the same for all runs, else "mixed ..."
do for [i = 1:n] {
    d = word(runs, i)
    m = cfgval(d, "method", "name")
    if (m eq "") { m = "?" }
    s = topval(d, "seed")
    if (s eq "") { s = "?" }
    rank = 0
    do for [j = 1:i - 1] { if (word(methods, j) eq m) { rank = rank + 1 } }
    methods = methods." ".m
    seeds = seeds." ".s
    pts = pts." ".word(ptypes, rank % words(ptypes) + 1)
    if (hasval(d."/metrics.csv", "test_acc") eq "1") { accs = accs." ".i }
    if (hasval(d."/metrics.csv", "w_clean") eq "1") { wclean = wclean." ".i }
    if (hasval(d."/metrics.csv", "w_noisy") eq "1") { wnoisy = wnoisy." ".i }
    if (system("[ -s '".d."/weight_curve.csv' ] && echo 1 || echo 0") eq "1") {
        curves = curves." ".i
    }
    ds = cfgval(d, "data", "dataset")
    dataset = (i == 1 || ds eq dataset) ? ds : "mixed datasets"
    nz = noiseof(d)
    noise = (i == 1 || nz eq noise) ? nz : "mixed label noise"
}
sub = "(".dataset.(dataset eq "" ? "" : ", ").noise.")"
label(i) = word(methods, i)." seed ".word(seeds, i)
colour(i) = mcol(word(methods, i))
ptype(i) = int(real(word(pts, i)))
metrics(i) = word(runs, i)."/metrics.csv"
# the j-th run index of a list like wclean
at(list, j) = int(real(word(list, j)))

set terminal pngcairo size 1000,600 noenhanced font ",11"
set datafile separator ","
set datafile missing NaN   # empty cells are missing data already; nan cells as well
set key outside right top
set grid

# --- test accuracy per epoch
set output folder."/mwn_accuracy.png"
set title "Label noise (MWN): test accuracy per epoch ".sub
set xlabel "epoch"
set ylabel "test accuracy (%)"
set xrange [0:*]
set yrange [*:*]
na = words(accs)
if (na == 0) {
    set xrange [0:1]
    set yrange [0:100]
    set label 1 "no test accuracy logged yet" at graph 0.5, 0.5 center
    plot NaN notitle
    unset label 1
} else {
    plot for [j = 1:na] metrics(at(accs, j)) using "epoch":(100 * column("test_acc")) \
             with linespoints lw 2 pt ptype(at(accs, j)) ps 0.9 lc rgb colour(at(accs, j)) \
             title label(at(accs, j))
}

# --- mean weight of the clean and of the corrupted samples per epoch
set output folder."/mwn_weights.png"
set title "Label noise (MWN): mean weight of the clean (solid) and the corrupted (dashed) " . \
          "training samples\n".sub
set ylabel "mean sample weight"
set yrange [0:*]
nc = words(wclean)
nn = words(wnoisy)
if (nc + nn == 0) {
    set xrange [0:1]
    set yrange [0:1]
    set label 1 "no run logged sample weights (w_clean and w_noisy are empty)" \
        at graph 0.5, 0.5 center
    plot NaN notitle
    unset label 1
} else {
    # built as a string: gnuplot 5.4 runs an empty "plot for [j = 1:0]" clause once; a run's
    # key entry is on its clean line, or on its corrupted line when it has no clean one
    cmd = ""
    if (nc > 0) {
        cmd = 'for [j = 1:nc] metrics(at(wclean, j)) using "epoch":"w_clean" ' . \
              'with linespoints lw 2 pt ptype(at(wclean, j)) ps 0.9 ' . \
              'lc rgb colour(at(wclean, j)) title label(at(wclean, j)), '
    }
    if (nn > 0) {
        cmd = cmd . 'for [j = 1:nn] metrics(at(wnoisy, j)) using "epoch":"w_noisy" ' . \
              'with linespoints lw 2 dt 2 pt ptype(at(wnoisy, j)) ps 0.9 ' . \
              'lc rgb colour(at(wnoisy, j)) ' . \
              'title (strstrt(wclean." ", sprintf(" %d ", at(wnoisy, j))) ? "" : ' . \
              'label(at(wnoisy, j))), '
    }
    eval 'plot ' . cmd . 'NaN with lines lw 2 lc rgb "black" title "clean (w_clean)", ' . \
         'NaN with lines lw 2 dt 2 lc rgb "black" title "corrupted (w_noisy)"'
}

# --- the learned weighting function
set output folder."/mwn_curve.png"
set title "Label noise (MWN): learned weighting function ".sub
set xlabel "training loss"
set ylabel "sample weight"
set xrange [*:*]
set yrange [0:*]
nv = words(curves)
if (nv == 0) {
    set xrange [0:10]
    set yrange [0:1]
    set label 1 "no run has a weight_curve.csv (uniform weights or unfinished runs)" \
        at graph 0.5, 0.5 center
    plot NaN notitle
    unset label 1
} else {
    plot for [j = 1:nv] word(runs, at(curves, j))."/weight_curve.csv" \
             using "loss":"weight" with linespoints lw 2 pointinterval 20 \
             pt ptype(at(curves, j)) ps 0.9 lc rgb colour(at(curves, j)) \
             title label(at(curves, j))
}
