# mwn.gp - the label-noise experiment (Meta-Weight-Net): the mwn runs under a folder, per group
# of runs that differ only in the seed (every config key that varies across the runs, named in
# the key: "evograd lr=0.001"), the mean over its seeds as a line and +- one sample std as a
# band (a group of one run: its line); one colour per group.
# usage: gnuplot -e "folder='results/mwn'" plots/mwn.gp
#          [-e "format='svg'"] [-e "notitle=1"] [-e "evograd='build/evograd'"] (plots/output.gp)
#   reads  <folder>/runs.csv (rows with task mwn; the subtitle from its columns dataset,
#          data.noise.type and data.noise.rate) and, through `evograd table --curve`, their run
#          folders' metrics.csv (epoch, test_acc, w_clean, w_noisy; empty or nan cells are
#          missing) and, of the runs without mwn.uniform_weights, weight_curve.csv (loss,weight)
#   writes <folder>/mwn_accuracy.<format>  test accuracy (%) per epoch
#          <folder>/mwn_weights.<format>   mean weight of the clean (solid) and of the corrupted
#                                          (dashed) training samples per epoch
#          <folder>/mwn_curve.<format>     the learned weighting function, weight against loss
#          A figure without data (no weights logged, only uniform weights) says so.
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/mwn.gp"
    exit status 2
}
# "fashion_mnist, unif label noise, rate 0.4" when all runs agree; these columns come before
# any list-valued one (gnuplot does not read quoted cells), so reading them by name is safe
set datafile separator ","
set table $setting
plot folder."/runs.csv" using (strcol("task") eq "mwn" ? \
    strcol("dataset").", ".(strcol("data.noise.type") eq "none" ? "no label noise" : \
    strcol("data.noise.type")." label noise, rate ".strcol("data.noise.rate")) : "") with table
unset table
sub = ""
do for [i = 2:|$setting|] {
    if ($setting[i] ne "") { sub = (sub eq "" || sub eq $setting[i]) ? $setting[i] : "mixed settings" }
}
sub = "(".sub.")"

set key outside right top
set grid

# --- test accuracy per epoch
call "plots/table.gp" sprintf("'%s' --where task=mwn --curve test_acc", folder)
call "plots/output.gp" folder."/mwn_accuracy" "1000" "600"
set title titled("Label noise (MWN): test accuracy per epoch, mean ± std over seeds\n".sub)
set xlabel "epoch"
set ylabel "test accuracy (%)"
set xrange [0:*]
set yrange [*:*]
eval epoch_tics(data, "epoch")
if (NG == 0) {
    eval nodata("no test accuracy logged yet", 100)
} else {
    eval "plot ".curves(data, "epoch", 100, 1, 1, 1)." NaN notitle"
}

# --- mean weight of the clean and of the corrupted samples per epoch
call "plots/table.gp" sprintf("'%s' --where task=mwn --curve w_clean", folder)
clean = data
call "plots/table.gp" sprintf("'%s' --where task=mwn --curve w_noisy", folder)
call "plots/output.gp" folder."/mwn_weights" "1000" "600"
set title titled("Label noise (MWN): mean weight of the clean (solid) and the corrupted " . \
                 "(dashed) training samples\n".sub)
set ylabel "mean sample weight"
set xrange [0:*]
set yrange [0:*]
eval epoch_tics(data, "epoch")
if (NG == 0) {
    eval nodata("no run logged sample weights (w_clean and w_noisy are empty)", 1)
} else {
    # the groups are the same rows in both tables (table.gp read the second one's)
    eval "plot ".curves(clean, "epoch", 1, 1, 1, 1).curves(data, "epoch", 1, 2, 1, 0) . \
         "NaN with lines lw 2 lc rgb 'black' title 'clean (w_clean)', " . \
         "NaN with lines lw 2 dt 2 lc rgb 'black' title 'corrupted (w_noisy)'"
}

# --- the learned weighting function
call "plots/table.gp" sprintf("'%s' --where task=mwn --where mwn.uniform_weights=false " . \
                              "--curve weight --curve-file weight_curve.csv --curve-x loss", folder)
call "plots/output.gp" folder."/mwn_curve" "1000" "600"
set title titled("Label noise (MWN): learned weighting function, mean ± std over seeds\n".sub)
set xlabel "training loss"
set ylabel "sample weight"
set xrange [*:*]
set yrange [0:*]
set xtics autofreq
if (NG == 0) {
    eval nodata("no run learned weights (only mwn.uniform_weights runs)", 1)
} else {
    eval "plot ".curves(data, "loss", 1, 1, 20, 1)." NaN notitle"
}
eval table_cleanup
