#!/usr/bin/env bash
# man.sh - the manual page evograd(1), made from the command's own texts: `evograd --help`,
# each command's --help, `evograd list` and `evograd list config`. make install runs it on the
# binary it installs, so the page says what that binary does.
# usage: runner/man.sh BIN > evograd.1
set -euo pipefail
bin=${1:?usage: runner/man.sh BIN > evograd.1}

# Text as roff that prints it as it is: backslashes escaped, lines that would be requests
# (starting with . or ') protected, inside a no-fill block.
verbatim() {
    echo ".nf"
    sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
    echo ".fi"
}

version=$("$bin" --version | sed 's/^evograd //')
cat <<EOF
.TH EVOGRAD 1 "" "evograd $version" "User Commands"
.SH NAME
evograd \\- EvoGrad experiment runner: gradient-based meta-learning and hyperparameter
optimisation on the CPU
.SH SYNOPSIS
.nf
EOF
for c in run check sweep table list; do
    # the usage lines: each form on a line of its own, its continuations indented
    "$bin" "$c" --help | awk '
        /^usage: / { sub(/^usage: +/, ""); print; more = 1; next }
        more && /^ +evograd / { sub(/^ +/, ""); print; next }
        more && /^ +\[/ { sub(/^ +/, "    "); print; next }
        { more = 0 }' | sed -e 's/\\/\\e/g'
done
cat <<'EOF'
.fi
.SH DESCRIPTION
EOF
"$bin" --help | sed '1,2d' | verbatim
for c in run check sweep table list; do
    echo ".SH \"$(echo "$c" | tr a-z A-Z)\""
    "$bin" "$c" --help | verbatim
done
echo ".SH \"WHAT THIS BUILD PROVIDES\""
"$bin" list | verbatim
echo ".SH CONFIGURATION"
"$bin" list config | verbatim
cat <<'EOF'
.SH FILES
.TP
.I configs/REFERENCE.md
every config key, as above, in Markdown (in the source tree)
.TP
.I results/<name>/
the runs of config name <name>: one folder per run and runs.csv
.SH "SEE ALSO"
The README of the source tree; pkg-config evograd for the C library
(#include <evograd/evograd.h>).
EOF
