#!/usr/bin/env bash
# demo.sh - what `make run` shows a new user: EvoGrad against the plain baseline, on the
# built-in Fashion-MNIST, in about a minute on 2 cores.
#   1. The paper's 1-D illustration (configs/paper/toy1d.yaml) for K = 2, 10 and 100 perturbed
#      copies: EvoGrad's hypergradient estimate against the closed form, and the joint (x, lambda)
#      trajectories. Its table: per K, over the lambda grid, the mean |mean estimate - exact| and
#      the mean standard deviation of one estimate.
#   2. The rotation experiment (configs/paper/rotation.yaml, EPOCHS epochs): LeNet trained on
#      upright images, validated and tested on images rotated +30 degrees; EvoGrad learns the
#      training images' rotation, the baseline (method none) cannot. Its table: per method, the
#      accuracy on the rotated test set, the learned angle and the run's seconds.
# The runs go to results/demo-toy1d/ and results/demo-rotation/, results folders like any other
# (make plots draws them too), which each `make run` replaces: copy them to keep them.
# usage: runner/demo.sh BIN [EPOCHS]     (from the repository's root)
set -euo pipefail
bin=${1:?usage: runner/demo.sh BIN [EPOCHS]}
epochs=${2:-3}
out=results/demo-  # the two folders: ${out}toy1d, ${out}rotation
plot_format=${PLOT_FORMAT:-png}

rm -rf "${out}toy1d" "${out}rotation"
mkdir -p "${out}toy1d" "${out}rotation"
start=$SECONDS

echo "== 1. The 1-D illustration: EvoGrad's hypergradient against the exact one (K = 2, 10, 100)"
for k in 2 10 100; do
    "$bin" run configs/paper/toy1d.yaml method.candidates=$k --quiet \
        --out "${out}toy1d/K$k" --runs "${out}toy1d/runs.csv" >/dev/null
done
gnuplot -e "folder='${out}toy1d'; format='$plot_format'; evograd='$bin'" plots/toy1d.gp

echo "== 2. The rotation experiment: LeNet, test images rotated +30 degrees, $epochs epochs"
for m in none evograd; do
    echo "-- method $m"
    "$bin" run configs/paper/rotation.yaml method.name=$m train.epochs="$epochs" \
        --out "${out}rotation/$m" --runs "${out}rotation/runs.csv" >/dev/null
done
gnuplot -e "folder='${out}rotation'; format='$plot_format'; evograd='$bin'" plots/rotation.gp

echo
echo "The 1-D illustration (l_T = (x-1)^2 + lambda x^2, l_V = (x-0.5)^2; 100 values of lambda):"
printf '  %-4s  %-34s  %s\n' K "mean |mean estimate - exact|" "mean std of one estimate"
for k in 2 10 100; do
    awk -F, -v k=$k 'NR > 1 { d = $2 - $4; e += d < 0 ? -d : d; s += $3; n++ }
        END { printf "  %-4s  %-34.3f  %.3f\n", k, e / n, s / n }' "${out}toy1d/K$k/hypergrad.csv"
done
echo
echo "The rotation experiment (Fashion-MNIST; validation and test images rotated +30 degrees):"
"$bin" table "${out}rotation" --metric final_test_acc --metric angle_deg --metric wall_s \
    --format csv | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
        printf "  %-8s  %-22s  %-14s  %s\n", "method", "rotated test accuracy", "learned angle", "seconds"
        next }
    { printf "  %-8s  %-22.4f  %-14s  %.1f\n", $col["method.name"], $col["final_test_acc_mean"],
        sprintf("%.1f deg", $col["angle_deg_mean"]), $col["wall_s_mean"] }'
echo
echo "Figures:"
for f in toy1d/toy1d_hypergrad toy1d/toy1d_trajectories rotation/rotation_angle; do
    echo "  $out$f.$plot_format"
done
echo "Runs (config.yaml, metrics.csv, summary.csv each): ${out}toy1d/K*/, ${out}rotation/{none,evograd}/"
echo "All of it took $((SECONDS - start)) s."
cat <<EOF

Next:
  the paper's settings       configs/paper/*.yaml (README: the rotation experiment, label noise,
                             cross-domain few-shot); evograd list tasks|methods|config
  one run of your own        make run CONFIG=configs/default.yaml ARGS="train.epochs=2"
  a sweep over methods/seeds $bin sweep configs/paper/rotation.yaml \\
                                 method.name=none,evograd seed=1..3 -j 2
  every figure and table     make plots
EOF
