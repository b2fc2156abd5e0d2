# lft.gp - cross-domain few-shot learning (learned feature-wise transformation): every lft run
# under a folder, one line per run ("method seed N" in the key), one colour per method.
# usage: gnuplot -e "folder='results/lft-fashion'" plots/lft.gp
#   reads  <folder>/*/metrics.csv (columns by name: epoch, train_loss, train_acc, val_acc,
#          ft_gamma, ft_beta; empty or nan cells are missing data) of runs whose config.yaml
#          says task: lft (the subtitle: data.dataset, lft.n_way, lft.shot, lft.unseen)
#   writes <folder>/lft_val.png    validation accuracy (pseudo-unseen episodes) per epoch
#          <folder>/lft_train.png  training episode loss (top) and accuracy (bottom) per epoch
#          <folder>/lft_ft.png     mean raw gamma (top) and beta (bottom) of the FT layers per
#                                  epoch, of the runs that have FT layers (lft.ft: true)
#          A figure without data (nothing logged yet, no FT layers) says so instead of failing.
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/lft.gp"
    exit status 2
}
runs = system("for d in '".folder."'/*/; do [ -f \"$d/metrics.csv\" ] || continue; " . \
              "grep -q '^task: lft$' \"$d/config.yaml\" 2>/dev/null || continue; " . \
              "echo \"${d%/}\"; done | sort -V")
n = words(runs)
if (n == 0) { print "lft.gp: no lft run under ".folder; exit status 1 }

cfgval(d, sec, key) = system("awk '/^".sec.":/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                             "m && /^  ".key.":/ {print $2; exit}' '".d."/config.yaml'")
topval(d, key) = system("awk '/^".key.":/ {print $2; exit}' '".d."/config.yaml'")
# 1 when column col of CSV file f has a value (neither empty nor nan) in some data row, else 0
hasval(f, col) = system("awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) " . \
                        "if ($i == \"".col."\") c = i; next} " . \
                        "c && $c != \"\" && tolower($c) !~ /nan/ {found = 1; exit} " . \
                        "END {print found + 0}' '".f."'")
# one colour per method; point types tell the seeds of a method apart
mcol(m) = m eq "evograd" ? "#1f77b4" : m eq "unrolled" ? "#d62728" : \
          m eq "none" ? "#555555" : "#2ca02c"
ptypes = "7 5 9 11 13 6 4 8 10 12"

# per run: method, seed and point type; lists of the runs (indices) with validation accuracies,
# with training loss, with training accuracy and with FT parameters
methods = ""; seeds = ""; pts = ""; vals = ""; tloss = ""; tacc = ""; fts = ""; files = ""
setting = ""   # "fashion_mnist, 5-way 5-shot, unseen domain fmnist-edges" when all runs agree
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
    f = d."/metrics.csv"
    files = files." '".f."'"
    if (hasval(f, "val_acc") eq "1") { vals = vals." ".i }
    if (hasval(f, "train_loss") eq "1") { tloss = tloss." ".i }
    if (hasval(f, "train_acc") eq "1") { tacc = tacc." ".i }
    if (hasval(f, "ft_gamma") eq "1" || hasval(f, "ft_beta") eq "1") { fts = fts." ".i }
    st = cfgval(d, "data", "dataset").", ".cfgval(d, "lft", "n_way")."-way ". \
         cfgval(d, "lft", "shot")."-shot, unseen domain ".cfgval(d, "lft", "unseen")
    setting = (i == 1 || st eq setting) ? st : "mixed settings"
}
sub = "(".setting.")"
# the last epoch logged by any run: up to 10 epochs, a tic per epoch (no 0.5 epochs)
maxep = real(system("awk -F, 'FNR == 1 {c = 0; for (i = 1; i <= NF; i++) " . \
                    "if ($i == \"epoch\") c = i; next} c && $c + 0 > m {m = $c + 0} " . \
                    "END {print m + 0}'".files))
label(i) = word(methods, i)." seed ".word(seeds, i)
colour(i) = mcol(word(methods, i))
ptype(i) = int(real(word(pts, i)))
metrics(i) = word(runs, i)."/metrics.csv"
# the j-th run index of a list like vals
at(list, j) = int(real(word(list, j)))
# an empty figure (y from 0 to ymax) that says why
nodata(msg, ymax) = sprintf('set xrange [0:1]; set yrange [0:%g]; ' . \
                            'set label 1 "%s" at graph 0.5, 0.5 center; plot NaN notitle; ' . \
                            'unset label 1', ymax, msg)

set terminal pngcairo size 1000,600 noenhanced font ",11"
set datafile separator ","
set datafile missing NaN   # empty cells are missing data already; nan cells as well
set key outside right top
set grid
if (maxep <= 10) { set xtics 1 }

# --- validation accuracy per epoch
set output folder."/lft_val.png"
set title "Cross-domain few-shot (LFT): validation accuracy per epoch\n".sub
set xlabel "epoch"
set ylabel "validation accuracy (%)"
set xrange [0:*]
set yrange [*:*]
nv = words(vals)
if (nv == 0) {
    eval nodata("no validation accuracy logged yet", 100)
} else {
    plot for [j = 1:nv] metrics(at(vals, j)) using "epoch":(100 * column("val_acc")) \
             with linespoints lw 2 pt ptype(at(vals, j)) ps 0.9 lc rgb colour(at(vals, j)) \
             title label(at(vals, j))
}

# The two-panel figures: the same margins in both panels, the key (the runs) in the top one.
set lmargin at screen 0.10
set rmargin at screen 0.80

# --- training episode loss and accuracy per epoch
set terminal pngcairo size 1000,800 noenhanced font ",11"
set output folder."/lft_train.png"
set multiplot layout 2,1 title "Cross-domain few-shot (LFT): training episodes per epoch\n".sub
set title ""
unset xlabel
set ylabel "training episode loss"
set xrange [0:*]
set yrange [*:*]
nl = words(tloss)
if (nl == 0) {
    eval nodata("no training loss logged yet", 1)
} else {
    plot for [j = 1:nl] metrics(at(tloss, j)) using "epoch":"train_loss" \
             with linespoints lw 2 pt ptype(at(tloss, j)) ps 0.9 lc rgb colour(at(tloss, j)) \
             title label(at(tloss, j))
}
set xlabel "epoch"
set ylabel "training episode accuracy (%)"
set xrange [0:*]
set yrange [*:*]
na = words(tacc)
if (na == 0) {
    eval nodata("no training accuracy logged yet", 100)
} else {
    plot for [j = 1:na] metrics(at(tacc, j)) using "epoch":(100 * column("train_acc")) \
             with linespoints lw 2 pt ptype(at(tacc, j)) ps 0.9 lc rgb colour(at(tacc, j)) \
             notitle
}
unset multiplot

# --- mean raw gamma and beta of the FT layers per epoch
set output folder."/lft_ft.png"
set multiplot layout 2,1 title "Cross-domain few-shot (LFT): mean raw gamma and beta of the " . \
                               "feature-wise transformation layers\n".sub
unset xlabel
set ylabel "mean raw gamma (ft_gamma)"
set xrange [0:*]
set yrange [*:*]
nf = words(fts)
if (nf == 0) {
    eval nodata("no run has FT layers (lft.ft: false) or none logged ft_gamma yet", 1)
} else {
    plot for [j = 1:nf] metrics(at(fts, j)) using "epoch":"ft_gamma" \
             with linespoints lw 2 pt ptype(at(fts, j)) ps 0.9 lc rgb colour(at(fts, j)) \
             title label(at(fts, j))
}
set xlabel "epoch"
set ylabel "mean raw beta (ft_beta)"
set xrange [0:*]
set yrange [*:*]
if (nf == 0) {
    eval nodata("no run has FT layers (lft.ft: false) or none logged ft_beta yet", 1)
} else {
    plot for [j = 1:nf] metrics(at(fts, j)) using "epoch":"ft_beta" \
             with linespoints lw 2 pt ptype(at(fts, j)) ps 0.9 lc rgb colour(at(fts, j)) \
             notitle
}
unset multiplot
