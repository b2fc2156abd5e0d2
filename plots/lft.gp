# lft.gp - cross-domain few-shot learning (learned feature-wise transformation): the lft runs
# under a folder, per group of runs that differ only in the seed (every config key that varies
# across the runs, named in the key: "evograd shot=5"), the mean over its seeds as a line and +-
# one sample std as a band (a group of one run: its line); one colour per group.
# usage: gnuplot -e "folder='results/lft-fashion'" plots/lft.gp
#          [-e "format='svg'"] [-e "notitle=1"] [-e "evograd='build/evograd'"] (plots/output.gp)
#   reads  <folder>/runs.csv (rows with task lft; the subtitle from lft.n_way and lft.shot) and,
#          through `evograd table --curve`, their run folders' metrics.csv (epoch, train_loss,
#          train_acc, val_acc, ft_gamma, ft_beta; empty or nan cells are missing data)
#   writes <folder>/lft_val.<format>    validation accuracy (pseudo-unseen episodes) per epoch
#          <folder>/lft_train.<format>  training episode loss (top) and accuracy (bottom)
#          <folder>/lft_ft.<format>     mean raw gamma (top) and beta (bottom) of the FT layers
#                                       per epoch, of the runs that have FT layers (lft.ft: true)
#          A figure without data (nothing logged yet, no FT layers) says so instead of failing.
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/lft.gp"
    exit status 2
}
where = sprintf("'%s' --where task=lft", folder)
# "5-way 5-shot" when all runs agree (else the key names the shots)
call "plots/table.gp" where." --format csv --metric lft.n_way --metric lft.shot"
stats data using "lft.n_way_mean" name "WAY" nooutput
stats data using "lft.shot_mean" name "SHOT" nooutput
sub = sprintf("(%s-way %s-shot)", WAY_min == WAY_max ? sprintf("%g", WAY_min) : "N", \
              SHOT_min == SHOT_max ? sprintf("%g", SHOT_min) : "K")

set key outside right top
set grid

# --- validation accuracy per epoch
call "plots/table.gp" where." --curve val_acc"
call "plots/output.gp" folder."/lft_val" "1000" "600"
set title titled("Cross-domain few-shot (LFT): validation accuracy per epoch, mean ± std " . \
                 "over seeds\n".sub)
set xlabel "epoch"
set ylabel "validation accuracy (%)"
set xrange [0:*]
eval epoch_tics(data, "epoch")
if (NG == 0) {
    eval nodata("no validation accuracy logged yet", 100)
} else {
    eval "plot ".curves(data, "epoch", 100, 1, 1, 1)." NaN notitle"
}

# The two-panel figures: the same margins in both panels, the key (the groups) in the top one.
# panel(col, scale, ylab, withkey, msg, ymax): one panel of the curve of col
panel(col, scale, ylab, withkey, msg, ymax) = \
    sprintf('call "plots/table.gp" where." --curve %s"; set ylabel "%s"; set xrange [0:*]; ' . \
            'set yrange [*:*]; eval epoch_tics(data, "epoch"); if (NG == 0) { eval nodata("%s", %g) } ' . \
            'else { eval "plot ".curves(data, "epoch", %g, 1, 1, %d)." NaN notitle" }', \
            col, ylab, msg, ymax, scale, withkey)
set lmargin at screen 0.10
set rmargin at screen 0.80

# --- training episode loss and accuracy per epoch
call "plots/output.gp" folder."/lft_train" "1000" "800"
set multiplot layout 2,1 title titled("Cross-domain few-shot (LFT): training episodes per " . \
                                      "epoch, mean ± std over seeds\n".sub)
set title ""
unset xlabel
eval panel("train_loss", 1, "training episode loss", 1, "no training loss logged yet", 1)
set xlabel "epoch"
eval panel("train_acc", 100, "training episode accuracy (%)", 0, \
           "no training accuracy logged yet", 100)
unset multiplot

# --- mean raw gamma and beta of the FT layers per epoch
call "plots/output.gp" folder."/lft_ft" "1000" "800"
set multiplot layout 2,1 title titled("Cross-domain few-shot (LFT): mean raw gamma and beta " . \
                                      "of the feature-wise transformation layers\n".sub)
unset xlabel
eval panel("ft_gamma", 1, "mean raw gamma (ft_gamma)", 1, \
           "no run has FT layers (lft.ft: false) or none logged ft_gamma yet", 1)
set xlabel "epoch"
eval panel("ft_beta", 1, "mean raw beta (ft_beta)", 0, \
           "no run has FT layers (lft.ft: false) or none logged ft_beta yet", 1)
unset multiplot
eval table_cleanup
