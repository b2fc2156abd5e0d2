#!/usr/bin/env bash
# tests/slurm.sh EVOGRAD - the job-array scripts of `evograd sweep --slurm` on a real Slurm.
#
# Needs a running cluster that takes jobs (.ci/slurm-up makes a one-node one on this machine);
# without one it says so and exits 77 (skipped). Three checks, in a scratch folder:
#   1. a 4-run sweep (rotation smoke, method none/evograd x seed 1..2, one epoch) submitted with
#      sbatch: every run DONE, runs.csv has 4 rows with the sweep's id, evograd table finds 2
#      groups of n = 2;
#   2. the same sweep with --stop-after 6 (a 16-step run in three jobs): each task requeues itself
#      twice and finishes with the metrics of check 1, clock columns aside;
#   3. a 45-epoch run (about 45 s) with --time 1 --signal-before 55: Slurm signals the job 5 s in
#      give or take its periodic checks (measured: 1 s to 24 s after the job's start for nominal
#      times of 5 to 20 s, so up to about 20 s late, well inside the run's 45 s), the run
#      checkpoints, the task requeues and resumes, as often as it takes, and it finishes with the
#      metrics of the same run made here without Slurm.
# It prints when the signals arrived and how long a requeued task waited to start again.
set -euo pipefail
bin=$(realpath "${1:?usage: tests/slurm.sh EVOGRAD}")
root=$(cd "$(dirname "$0")/.." && pwd)
cfg=$root/configs/smoke/rotation.yaml

if ! command -v sbatch >/dev/null || ! sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm.sh: skipped: no Slurm cluster takes jobs here (as root: bash .ci/slurm-up)"
    exit 77
fi
work=$(mktemp -d /tmp/evograd-slurm.XXXXXX)
keep=0
trap '[ $keep -eq 1 ] && echo "slurm.sh: kept $work" >&2 || rm -rf "$work"' EXIT
fail() {
    keep=1
    echo "slurm.sh: FAIL: $*" >&2
    exit 1
}

# submit SCRIPT LOG: sbatch SCRIPT (in its folder), then wait until every task of the array has
# left the queue (at most 5 minutes), writing "<seconds> <task> <state>" to LOG at each change.
submit() {
    local script=$1 log=$2 jid t0 now seen="" line
    jid=$(sbatch --parsable "$script") || fail "sbatch $script"
    t0=$(ms)
    : >"$log"
    while :; do
        now=$(squeue -h -r -j "$jid" -o '%i %T' 2>/dev/null | sort || true)
        if [ "$now" != "$seen" ]; then
            while read -r line; do
                [ -n "$line" ] && echo "$(seconds_since "$t0") $line" >>"$log"
            done <<<"$(comm -13 <(printf '%s\n' "$seen") <(printf '%s\n' "$now"))"
            seen=$now
        fi
        [ -z "$now" ] && break
        if [ $(($(ms) - t0)) -gt 300000 ]; then
            scancel "$jid"
            fail "job $jid still queued after 5 minutes: $(cat "$log")"
        fi
        sleep 0.5
    done
    echo "$(seconds_since "$t0") all done" >>"$log"
}
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
seconds_since() { local d=$(($(ms) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }

# the array task number of run folder DIR in job script SCRIPT
task_of() { awk -v want="dir=$1" '/^[0-9]+\)$/ { t = $1 + 0 } $1 == want { print t; exit }' "$2"; }

# metrics.csv without the clock columns (wall_s, peak_rss_mb), found by name
noclock() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) drop[i] = ($i == "wall_s" || $i == "peak_rss_mb") }
             { s = ""; for (i = 1; i <= NF; i++) if (!drop[i]) s = s (s == "" ? "" : ",") $i; print s }' "$1"
}

check_done() { # check_done FOLDER RUNS.CSV ROWS
    local d
    for d in "$1"/*/; do
        [ "$(basename "$d")" = slurm ] && continue
        [ -f "$d/DONE" ] || fail "$d is not DONE: $(cat "$1"/slurm/*.out)"
    done
    [ "$(($(wc -l <"$2") - 1))" -eq "$3" ] || fail "$2 has $(($(wc -l <"$2") - 1)) rows, not $3"
    # (a requeue ends the job with slurmstepd's "error: *** JOB n CANCELLED"; nothing else may)
    if grep -h -i 'error' "$1"/slurm/*.out | grep -v 'error: \*\*\* JOB [0-9]* ON .* CANCELLED AT'; then
        fail "an error in the Slurm output of $1"
    fi
}

sweep=(method.name=none,evograd seed=1..2 train.epochs=1 threads=1)
res=results/rotation-smoke

echo "== slurm 1: a 4-run sweep as a job array"
mkdir "$work/a" && cd "$work/a"
"$bin" sweep "$cfg" "${sweep[@]}" --slurm job.sh 2>/dev/null
submit job.sh states.txt
check_done $res $res/runs.csv 4
ids=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "sweep") c = i } NR > 1 { print $c }' $res/runs.csv | sort -u)
[ "$(echo "$ids" | wc -l)" -eq 1 ] || fail "runs.csv carries more than one sweep id: $ids"
grep -q -- "--sweep $ids" job.sh || fail "runs.csv's sweep id $ids is not the script's"
"$bin" table $res/runs.csv >table.md
grep -q '| none .*| 2 |' table.md && grep -q '| evograd .*| 2 |' table.md || fail "evograd table: $(cat table.md)"
echo "4 runs DONE in $(tail -n 1 states.txt | cut -d' ' -f1) s; runs.csv 4 rows, sweep $ids"
cat table.md

echo "== slurm 2: a --stop-after budget of 6 steps per job (16-step runs)"
mkdir "$work/b" && cd "$work/b"
"$bin" sweep "$cfg" "${sweep[@]}" --slurm job.sh --stop-after 6 2>/dev/null
submit job.sh states.txt
check_done $res $res/runs.csv 4
for d in $res/*-seed*; do
    n=$(grep -c 'requeueing array task' "$res/slurm/"*_"$(task_of "$d" job.sh)".out)
    [ "$n" -eq 2 ] || fail "$d requeued $n times, not 2"
    cmp -s <(noclock "$d/metrics.csv") <(noclock "$work/a/$d/metrics.csv") ||
        fail "$d: metrics differ from the run in one job: $(diff <(noclock "$d/metrics.csv") <(noclock "$work/a/$d/metrics.csv"))"
done
echo "each run in 3 jobs (2 requeues), metrics identical to one job's; all DONE in $(tail -n 1 states.txt | cut -d' ' -f1) s"

echo "== slurm 3: signalled before a 1-minute time limit, requeued, resumed"
mkdir "$work/c" && cd "$work/c"
long=(method.name=evograd train.epochs=45 threads=1)
"$bin" sweep "$cfg" "${long[@]}" --slurm job.sh --time 1 --signal-before 55 2>/dev/null
"$bin" run "$cfg" "${long[@]}" --out local --quiet >/dev/null 2>local.err &
here=$!
submit job.sh states.txt
wait $here || fail "the run without Slurm: $(cat local.err)"
d=$(ls -d $res/evograd*)
check_done $res $res/runs.csv 1
out=$(cat $res/slurm/*.out)
stops=$(grep -c 'stopped by SIGTERM' <<<"$out" || true)
[ "$stops" -ge 1 ] || fail "Slurm never signalled the run: $out"
[ "$(grep -c 'requeueing array task' <<<"$out")" -eq "$stops" ] || fail "not every stop was requeued: $out"
cmp -s <(noclock "$d/metrics.csv") <(noclock local/metrics.csv) ||
    fail "metrics differ from the run without Slurm: $(diff <(noclock "$d/metrics.csv") <(noclock local/metrics.csv))"
# the measured times: RUNNING -> PENDING is a signal and a requeue, PENDING -> RUNNING a restart
awk '{ t = $1 } $3 == "RUNNING" { if (p != "") wait = wait sprintf("%s %.0f", wait == "" ? "" : ",", t - p); r = t }
     $3 == "PENDING" && r != "" { ran = ran sprintf("%s %.0f", ran == "" ? "" : ",", t - r); p = t }
     END { printf "jobs ran%s s before the signal (nominal 5 s); requeued tasks started again after%s s\n", ran, wait }' states.txt
grep -o 'stopped by SIGTERM at global step [0-9]*' <<<"$out" | sed 's/^/  /'
echo "signalled and requeued $stops time(s), metrics identical to the run without Slurm; DONE after $(tail -n 1 states.txt | cut -d' ' -f1) s"
echo "slurm.sh: all 3 checks passed"
