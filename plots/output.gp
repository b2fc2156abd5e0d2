# output.gp - where and how every plot script draws: the terminal and file of one figure, and
# whether figures have titles. Set from the command line (make plots PLOT_FORMAT=svg
# PLOT_TITLES=0 passes them):
#   format='png' (default) | 'pdf' | 'svg'   pngcairo, pdfcairo or svg, file BASE.png/.pdf/.svg
#   notitle=1, or title=''                    no figure titles
#   title='TEXT'                              TEXT instead of every figure's own title
# usage (in a plot script, once per figure):
#   call "plots/output.gp" "BASE" "WIDTH" "HEIGHT" ["enhanced"]
#     BASE: the file's path without its extension; WIDTH, HEIGHT in pixels (PDF: 72 per inch);
#     text is noenhanced unless the 4th argument says enhanced
#   then  set title titled("the figure's own title")  (also for multiplot titles)
#   sets   outfile  the path written
if (!exists("format")) { format = "png" }
if (format ne "png" && format ne "pdf" && format ne "svg") {
    print "output.gp: format is png, pdf or svg, not '".format."'"
    exit status 2
}
# the figure's title, or "" when titles are off
titled(s) = (exists("notitle") && notitle) ? "" : exists("title") ? title : s
enh = ARGC >= 4 && ARG4 eq "enhanced" ? "enhanced" : "noenhanced"
if (format eq "png") {
    eval sprintf('set terminal pngcairo size %s,%s %s font ",11"', ARG2, ARG3, enh)
} else {
    if (format eq "pdf") {
        eval sprintf('set terminal pdfcairo size %g in,%g in %s font ",11"', \
                     real(ARG2) / 72, real(ARG3) / 72, enh)
    } else {
        eval sprintf('set terminal svg size %s,%s %s font ",11" background "white"', \
                     ARG2, ARG3, enh)
    }
}
outfile = ARG1.".".format
set output outfile
