# train.gp - the training curve of one run: training loss and test accuracy per epoch.
# usage: gnuplot -e "run='results/default/none-seed1'" plots/train.gp
#   reads  <run>/metrics.csv (columns epoch,step,wall_s,train_loss,val_loss,test_acc,...)
#   writes <run>/train.<format> (format, notitle: plots/output.gp)
if (!exists("run")) { print "usage: gnuplot -e \"run='RUN_DIR'\" plots/train.gp"; exit status 2 }
set datafile separator ','
call 'plots/output.gp' run.'/train' '900' '420'
set multiplot layout 1,2 title titled(run)
set key top right
set xlabel 'epoch'
set grid
set ylabel 'training loss'
plot run.'/metrics.csv' using 'epoch':'train_loss' with linespoints pt 7 ps 0.6 lw 2 title 'train loss'
set key bottom right
set ylabel 'test accuracy'
plot run.'/metrics.csv' using 'epoch':'test_acc' with linespoints pt 7 ps 0.6 lw 2 lc 2 title 'test accuracy'
unset multiplot
