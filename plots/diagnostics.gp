# diagnostics.gp - how close each method's hypergradient is to the exact one-step look-ahead:
# the cosine of hypergrad_diag.csv (diagnostics.every_steps) over the steps, one line per run
# under a folder (method, K and seed in the key), and, for evograd runs with diagnostics.draws,
# the cosine of the mean of the draws as dashed lines.
# usage: gnuplot -e "folder='results/NAME'" plots/diagnostics.gp
#   reads  <folder>/*/hypergrad_diag.csv (columns by name: step, cosine, draws_cosine) and each
#          run's summary.csv (method.name, method.candidates, seed, diagnostics.draws;
#          plots/runval.gp)
#   writes <folder>/diag_cosine.<format> (format, notitle: plots/output.gp)
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/diagnostics.gp"
    exit status 2
}
runs = system("for d in '".folder."'/*/; do [ -s \"$d/hypergrad_diag.csv\" ] && " . \
              "echo \"${d%/}\"; done")
n = words(runs)
if (n == 0) { print "diagnostics.gp: no hypergrad_diag.csv under ".folder; exit status 1 }
# each run's method, K, seed and diagnostics.draws from its summary.csv (columns by name)
array LABEL[n]
array DRAWS[n]
do for [i = 1:n] {
    d = word(runs, i)
    call "plots/runval.gp" d "method.name"
    m = RUNVAL
    call "plots/runval.gp" d "method.candidates"
    k = RUNVAL
    call "plots/runval.gp" d "seed"
    LABEL[i] = m.(m eq "evograd" ? " K ".k : "")." seed ".RUNVAL
    call "plots/runval.gp" d "diagnostics.draws"
    DRAWS[i] = RUNVAL eq "" ? 0 : int(real(RUNVAL))
}
nd = sum [i=1:n] (DRAWS[i] > 0 ? 1 : 0)

call "plots/output.gp" folder."/diag_cosine" "1000" "600"
set datafile separator ","
set key outside right top
set xlabel "step"
set ylabel "cosine with the exact one-step hypergradient"
set title titled("Hypergradient diagnostics: each method against the exact look-ahead")
set grid
set yrange [-1.05:1.05]
# the runs with draws (diagnostics.draws > 0): their rows have a draws_cosine, a dashed line
if (nd > 0) {
    plot for [i=1:n] word(runs, i)."/hypergrad_diag.csv" using "step":"cosine" with linespoints \
             lc i title LABEL[i], \
         for [i=1:n] word(runs, i)."/hypergrad_diag.csv" \
             using "step":(DRAWS[i] > 0 ? column("draws_cosine") : NaN) with lines \
             dashtype 2 lc i title (DRAWS[i] > 0 ? LABEL[i].sprintf(", mean of %d draws", DRAWS[i]) : "")
} else {
    plot for [i=1:n] word(runs, i)."/hypergrad_diag.csv" using "step":"cosine" with linespoints \
             lc i title LABEL[i]
}
