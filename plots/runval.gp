# runval.gp - one resolved config value of a finished run: the column named KEY of the run's
# summary.csv (every config key is a column there, by its dotted name; quoted cells stay whole).
# usage (in a plot script): call "plots/runval.gp" "RUN_DIR" "KEY"
#   sets the string RUNVAL ("" when the run has no summary.csv or no such column)
RUNVAL = ""
if (system("[ -s '".ARG1."/summary.csv' ] && echo 1") eq "1") {
    set datafile separator ","
    set table $runval_cell
    plot ARG1."/summary.csv" using (strcol(ARG2)) with table
    unset table
    # line 1 is the header
    if (|$runval_cell| >= 2) { RUNVAL = $runval_cell[2] }
}
