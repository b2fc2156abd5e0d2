# rotation.gp - the learned angle per epoch of the rotation runs under a folder: per group of
# runs that differ only in the seed (every config key that varies across the runs, named in the
# key: "evograd sigma=0.001"), the mean over its seeds as a line and +- one sample std as a band
# (a group of one run: its line); the validation rotation as a dashed line.
# usage: gnuplot -e "folder='results/rotation'" plots/rotation.gp
#          [-e "format='svg'"] [-e "notitle=1"] [-e "evograd='build/evograd'"] (plots/output.gp)
#   reads  <folder>/runs.csv (rows with task rotation; the angle rotation.degrees) and each of
#          their run folders' metrics.csv (epoch, angle_deg), through `evograd table --curve`
#   writes <folder>/rotation_angle.<format>
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/rotation.gp"
    exit status 2
}
call "plots/table.gp" sprintf("'%s' --where task=rotation --format csv --metric rotation.degrees", folder)
stats data using "rotation.degrees_mean" nooutput
target = STATS_max
call "plots/table.gp" sprintf("'%s' --where task=rotation --curve angle_deg", folder)

call "plots/output.gp" folder."/rotation_angle" "900" "600"
set key outside right top
set xlabel "epoch"
set ylabel "learned angle (degrees)"
set title titled(sprintf("Rotation experiment: learned angle (validation/test rotated %g degrees)" . \
                         "\nmean ± std over seeds", target))
set grid
set xrange [0:*]

set offsets 0, 0, graph 0.05, graph 0.05
eval epoch_tics(data, "epoch")
if (NG == 0) {
    eval nodata("no angle logged yet", target)
} else {
    eval "plot ".curves(data, "epoch", 1, 1, 1, 1). \
         "target with lines dashtype 2 lc rgb 'black' title 'validation rotation'"
}
eval table_cleanup
