# sweep.gp - a sweep figure: a metric against one varied key, one line per group of the other
# varied keys (named in the key), each point the mean over the seeds +- one sample std as error
# bars (a point of one run: no bar). The x axis is logarithmic when every x is > 0 and the
# largest is at least 100 times the smallest.
# usage: build/evograd table results/NAME --format csv --x KEY --metric METRIC > sweep.csv
#        gnuplot -e "data='sweep.csv'; x='KEY'; y='METRIC'; out='results/NAME/sweep_KEY'" \
#                plots/sweep.gp
#          [-e "scale=100; ylabel='test accuracy (%)'"]  y times scale, and the y label
#          [-e "format='svg'"] [-e "notitle=1"] [-e "title='...'"] (plots/output.gp)
#        (plots/sweep.sh does all of it)
#   reads  data: CSV with columns group, x, <y>_mean and <y>_std (evograd table --x)
#   writes <out>.<format>
if (!exists("data") || !exists("x") || !exists("y") || !exists("out")) {
    print "usage: gnuplot -e \"data='TABLE.csv'; x='KEY'; y='METRIC'; out='BASE'\" plots/sweep.gp"
    exit status 2
}
if (!exists("scale")) { scale = 1 }
if (!exists("ylabel")) { ylabel = y }
set datafile separator ","
call "plots/groups.gp" data
if (NG == 0) { print "sweep.gp: ".data." has no rows"; exit status 1 }
stats data using x nooutput
logx = STATS_min > 0 && STATS_max >= 100 * STATS_min

call "plots/output.gp" out "900" "600"
set title titled(sprintf("%s against %s, mean ± std over seeds", y, x))
set key outside right top
set grid
set xlabel x
set ylabel ylabel
set autoscale xfix
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
if (logx) { set logscale x; set format x "%g" }
my = y."_mean"
sy = y."_std"
# a std of nan (one run) draws the point without a bar
plot for [i = 1:NG] data using x:(strcol("group") eq G[i] ? scale * column(my) : NaN): \
         (s = column(sy), s == s ? scale * s : 0) with yerrorlines lw 2 pt 7 ps 1 lc i \
         title G[i]
