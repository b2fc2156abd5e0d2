# toy1d.gp - the paper's 1-D figures from toy1d runs (one run per population size K).
# usage: gnuplot -e "folder='results/toy1d'" plots/toy1d.gp
#          every <folder>/*/ holding hypergrad.csv, ordered by K (method.candidates)
#        gnuplot -e "runs='dirA dirB dirC'" plots/toy1d.gp
#          those run directories, in that order; PNGs go to the first one's parent folder
#          (or to out='DIR' if given)
#   reads  <run>/hypergrad.csv (lambda,mean,std,exact), <run>/trajectory.csv and
#          <run>/trajectory_exact.csv (start,step,x,lambda,val_loss), <run>/summary.csv
#          (method.name, method.candidates; plots/runval.gp)
#   writes <out>/toy1d_hypergrad.<format>     per K: mean +- std of the estimate against lambda, with
#                                         the exact (lambda-1)/(lambda+1)^3
#          <out>/toy1d_trajectories.<format>  per K: (x, lambda) paths from the 5 starts, the method's
#                                         (solid) and the exact hypergradient's (dashed), over l_V
if (!exists("runs") && !exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/toy1d.gp"
    print "   or: gnuplot -e \"runs='DIR1 DIR2 ...'\" plots/toy1d.gp"
    exit status 2
}
if (!exists("runs")) {
    runs = system("for d in '".folder."'/*/; do [ -f \"$d/hypergrad.csv\" ] && echo \"${d%/}\"; done")
    sort_by_k = 1
}
if (!exists("out")) {
    out = exists("folder") ? folder : system("dirname '".word(runs, 1)."'")
}
n = words(runs)
if (n == 0) { print "toy1d.gp: no run directory with hypergrad.csv"; exit status 1 }

# each run's method and K from its summary.csv (columns by name); "EvoGrad, K = 10" as its
# panel title; a folder's runs in order of K
array RUN[n]
array LABEL[n]
array K[n]
do for [i = 1:n] {
    RUN[i] = word(runs, i)
    call "plots/runval.gp" RUN[i] "method.candidates"
    K[i] = RUNVAL eq "" ? 0 : int(real(RUNVAL))
    call "plots/runval.gp" RUN[i] "method.name"
    LABEL[i] = RUNVAL eq "evograd" ? sprintf("EvoGrad, K = %d", K[i]) : RUNVAL
}
if (exists("sort_by_k")) {
    do for [i = 2:n] {
        do for [j = i:2:-1] {
            if (K[j - 1] > K[j]) {
                t = K[j]; K[j] = K[j - 1]; K[j - 1] = t
                t = RUN[j]; RUN[j] = RUN[j - 1]; RUN[j - 1] = t
                t = LABEL[j]; LABEL[j] = LABEL[j - 1]; LABEL[j - 1] = t
            }
        }
    }
}
label(i) = LABEL[i]

set datafile separator ','
width = sprintf("%d", (n < 2 ? 1 : n) * 430 + 40)
set grid
set key bottom right box opaque

# --- figure 1: the hypergradient estimate against the exact one
call 'plots/output.gp' out.'/toy1d_hypergrad' width '420' 'enhanced'
hypergrad_file = outfile
set multiplot layout 1, n title titled("1-D illustration: hypergradient d l_V / d {/Symbol l} (mean ± std over trials)")
set xlabel '{/Symbol l}'
set ylabel 'hypergradient'
set yrange [-1:1]
do for [i = 1:n] {
    f = RUN[i].'/hypergrad.csv'
    set title label(i)
    plot f using 'lambda':(column('mean') - column('std')):(column('mean') + column('std')) \
             with filledcurves lc rgb '#9ecae1' fs transparent solid 0.6 noborder title 'mean ± std', \
         f using 'lambda':'mean' with lines lw 2 lc rgb '#08519c' title 'mean estimate', \
         f using 'lambda':'exact' with lines lw 2 dt 2 lc rgb '#cb181d' title 'exact (λ-1)/(λ+1)^3'
}
unset multiplot

# --- figure 2: joint optimisation of (x, lambda) over the validation loss (x - 0.5)^2
call 'plots/output.gp' out.'/toy1d_trajectories' width '420' 'enhanced'
set multiplot layout 1, n title titled("1-D illustration: 5 steps of GD on x, then a step on {/Symbol l}, from 5 starts (solid: method, dashed: exact hypergradient)")
set xlabel 'x'
set ylabel '{/Symbol l}'
set xrange [-2:2]
set yrange [0:2]
set cbrange [0:6.25]
set palette defined (0 '#ffffff', 1 '#fee8c8', 3 '#fdbb84', 6.25 '#e34a33')
set cblabel 'l_V = (x - 0.5)^2' offset 1.5, 0
unset colorbox
set key off
set samples 200, 100
set isosamples 200, 100
colours = "#1b9e77 #7570b3 #d95f02 #e7298a #386cb0"
# the sampled background '++' yields no points under separator ',': read the CSVs through tr
set datafile separator whitespace
do for [i = 1:n] {
    f = "< tr , ' ' < '".RUN[i]."/trajectory.csv'"
    g = "< tr , ' ' < '".RUN[i]."/trajectory_exact.csv'"
    set title label(i)
    if (i == n) { set colorbox }
    plot '++' using 1:2:(($1 - 0.5)**2) with image notitle, \
         for [s = 0:4] f using (column('start') == s ? column('x') : NaN):'lambda' \
             with linespoints lw 2 pt 7 ps 0.6 lc rgb word(colours, s + 1) notitle, \
         for [s = 0:4] g using (column('start') == s ? column('x') : NaN):'lambda' \
             with linespoints lw 1.5 dt 2 pt 6 ps 0.6 lc rgb word(colours, s + 1) notitle, \
         for [s = 0:4] f using (column('start') == s && column('step') == 0 ? column('x') : NaN):'lambda' \
             with points pt 5 ps 1.1 lc rgb word(colours, s + 1) notitle
}
unset multiplot
print hypergrad_file
print outfile
