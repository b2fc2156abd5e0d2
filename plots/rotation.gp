# rotation.gp - the learned angle per epoch of every rotation run under a folder, one line per
# run (method and seed in the key), with the validation rotation as a dashed line.
# usage: gnuplot -e "folder='results/rotation'" plots/rotation.gp
#   reads  <folder>/*/metrics.csv (epoch column 1, angle_deg column 10) of runs whose
#          config.yaml says task: rotation
#   writes <folder>/rotation_angle.png
if (!exists("folder")) {
    print "usage: gnuplot -e \"folder='results/NAME'\" plots/rotation.gp"
    exit status 2
}
runs = system("for d in '".folder."'/*/; do [ -f \"$d/metrics.csv\" ] || continue; " . \
              "grep -q '^task: rotation$' \"$d/config.yaml\" 2>/dev/null || continue; " . \
              "echo \"${d%/}\"; done")
n = words(runs)
if (n == 0) { print "rotation.gp: no rotation run under ".folder; exit status 1 }
cfgval(d, sec, key) = system("awk '/^".sec.":/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                             "m && /^  ".key.":/ {print $2; exit}' '".d."/config.yaml'")
topval(d, key) = system("awk '/^".key.":/ {print $2; exit}' '".d."/config.yaml'")
label(d) = cfgval(d, "method", "name")." seed ".topval(d, "seed")
target = real(system("awk '/^rotation:/ {m = 1; next} /^[^ ]/ {m = 0} " . \
                    "m && /^  degrees:/ {printf \"%g\", $2; exit}' '".word(runs, 1)."/config.yaml'"))

set terminal pngcairo size 900,600 enhanced font ",11"
set output folder."/rotation_angle.png"
set datafile separator ","
set key outside right top
set xlabel "epoch"
set ylabel "learned angle (degrees)"
set title "Rotation experiment: learned angle (validation/test rotated ".sprintf("%g", target)." degrees)"
set grid
set xrange [0:*]
plot for [i=1:n] word(runs, i)."/metrics.csv" every ::1 using 1:10 with linespoints \
         title label(word(runs, i)), \
     target with lines dashtype 2 lc rgb "black" title "validation rotation"
