# groups.gp - the legend groups of a table CSV (evograd table --format csv or --curve: its
# column "group" is each row's label).
# usage (in a plot script): call "plots/groups.gp" "FILE"
#   sets NG and G[1..NG], the distinct values of column group, in order of first appearance
set datafile separator ","
set table $groups_column
plot ARG1 using (strcol("group")) with table
unset table
NG = 0
array G[|$groups_column| > 1 ? |$groups_column| - 1 : 1]
# line 1 is the header
do for [i = 2:|$groups_column|] {
    seen = 0
    do for [j = 1:NG] { if (G[j] eq $groups_column[i]) { seen = 1 } }
    if (!seen) { NG = NG + 1; G[NG] = $groups_column[i] }
}
