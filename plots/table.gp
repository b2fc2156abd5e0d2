# table.gp - a runs table for a plot script: runs `evograd table ARGS` (runner/table_cmd.c:
# --curve or --format csv, whose first column "group" is each row's legend label) into a
# temporary CSV and reads its groups (plots/groups.gp); plot clauses for curve tables.
# usage (in a plot script):
#   call "plots/table.gp" "'results/NAME' --where task=mwn --curve test_acc"
#   sets   data        the CSV's path (removed by `eval table_cleanup` at the script's end)
#          NG, G[1..NG] its distinct group labels, in order of first appearance
#   exits 1 when evograd table fails (its message is on standard error)
#   evograd='PATH' names the binary (default build/evograd)
if (!exists("evograd")) { evograd = "build/evograd" }
if (!exists("table_files")) { table_files = "" }
table_cleanup = 'system("rm -f ".table_files); table_files = ""'
data = system("f=$(mktemp) && '".evograd."' table ".ARG1." > \"$f\" && echo \"$f\" || " . \
              "{ rm -f \"$f\"; echo; }")
if (data eq "") {
    print "table.gp: evograd table ".ARG1." failed"
    exit status 1
}
table_files = table_files." '".data."'"
call "plots/groups.gp" data
# Plot clauses (eval "plot ".curves(...)) that draw the curve table in file f (--curve): per
# group G[i], in colour i, scale * (mean ± std) as a transparent band (absent where std is nan:
# one run) and scale * mean as a line (dash type dt, a point every pi rows), with the group's
# label in the key when withkey; x is the table's x column (epoch). Commas end each clause set.
curves(f, x, scale, dt, pi, withkey) = sprintf('for [i = 1:NG] "%s" using "%s":' . \
    '(strcol("group") eq G[i] ? %.17g * (column("mean") - column("std")) : NaN):' . \
    '(%.17g * (column("mean") + column("std"))) with filledcurves fs transparent solid 0.2 ' . \
    'noborder lc i notitle, for [i = 1:NG] "%s" using "%s":' . \
    '(strcol("group") eq G[i] ? %.17g * column("mean") : NaN) with linespoints lw 2 pt 7 ' . \
    'ps 0.8 pi %d dt %d lc i %s, ', f, x, scale, scale, f, x, scale, pi, dt, \
    withkey ? 'title G[i]' : 'notitle')
# An empty figure (x in [0:1], y in [0:ymax]) that says why: eval nodata("...", 1)
nodata(msg, ymax) = sprintf('set xrange [0:1]; set yrange [0:%g]; ' . \
                            'set label 1 "%s" at graph 0.5, 0.5 center; plot NaN notitle; ' . \
                            'unset label 1', ymax, msg)
# xtics every epoch when the table's x column (x) ends by epoch 10: eval epoch_tics(data, "epoch")
epoch_tics(f, x) = sprintf('stats "%s" using "%s" nooutput; if (STATS_records > 0 && STATS_max <= 10) { set xtics 1 } else { set xtics autofreq }', f, x)
