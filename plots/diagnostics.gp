# diagnostics.gp - how close each method's hypergradient is to the exact one-step look-ahead:
# the cosine of hypergrad_diag.csv (diagnostics.every_steps) over the steps, one line per run
# under a folder (method, K and seed in the key), and, for evograd runs with diagnostics.draws,
# the cosine of the mean of the draws as dashed lines.
# usage: gnuplot -e "folder='results/NAME'" plots/diagnostics.gp
#   reads  <folder>/*/hypergrad_diag.csv (columns by name: step, cosine, draws_cosine) and each
#          run's config.yaml (method, K, seed, draws)
#   writes <folder>/diag_cosine.<format> (format, notitle: plots/output.gp)
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/diagnostics.gp"
    exit status 2
}
runs = system("for d in '".folder."'/*/; do [ -s \"$d/hypergrad_diag.csv\" ] && " . \
              "echo \"${d%/}\"; done")
n = words(runs)
if (n == 0) { print "diagnostics.gp: no hypergrad_diag.csv under ".folder; exit status 1 }
# the runs with draws (diagnostics.draws > 0): their rows have a draws_cosine
druns = system("for d in '".folder."'/*/; do [ -s \"$d/hypergrad_diag.csv\" ] || continue; " . \
               "awk '/^diagnostics:/ {m = 1; next} /^[^ ]/ {m = 0} " . \
               "m && /^  draws:/ && $2 > 0 {f = 1} END {exit !f}' \"$d/config.yaml\" && " . \
               "echo \"${d%/}\"; done")
nd = words(druns)
cfgval(d, sec, key) = system("awk '/^".sec.":/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                             "m && /^  ".key.":/ {print $2; exit}' '".d."/config.yaml'")
topval(d, key) = system("awk '/^".key.":/ {print $2; exit}' '".d."/config.yaml'")
method(d) = cfgval(d, "method", "name")
label(d) = method(d).(method(d) eq "evograd" ? " K ".cfgval(d, "method", "candidates") : "") . \
           " seed ".topval(d, "seed")
draws(d) = int(real(cfgval(d, "diagnostics", "draws")))

call "plots/output.gp" folder."/diag_cosine" "1000" "600"
set datafile separator ","
set key outside right top
set xlabel "step"
set ylabel "cosine with the exact one-step hypergradient"
set title titled("Hypergradient diagnostics: each method against the exact look-ahead")
set grid
set yrange [-1.05:1.05]
index_of(d) = sum [i=1:n] (word(runs, i) eq d ? i : 0)
if (nd > 0) {
    plot for [i=1:n] word(runs, i)."/hypergrad_diag.csv" using "step":"cosine" with linespoints \
             lc i title label(word(runs, i)), \
         for [j=1:nd] word(druns, j)."/hypergrad_diag.csv" using "step":"draws_cosine" with lines \
             dashtype 2 lc index_of(word(druns, j)) \
             title label(word(druns, j)).sprintf(", mean of %d draws", draws(word(druns, j)))
} else {
    plot for [i=1:n] word(runs, i)."/hypergrad_diag.csv" using "step":"cosine" with linespoints \
             lc i title label(word(runs, i))
}
