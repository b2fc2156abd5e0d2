#!/usr/bin/env bash
# install.sh - the installed library and command as a user meets them (make test-install; CI
# runs it). Into a scratch prefix: make install, then
#   - every file is where the Makefile says, and the installed evograd runs;
#   - both libraries export exactly the functions the public headers declare (all eg_);
#   - examples/quadratic.c builds with pkg-config against the shared and against the static
#     library and runs (it exits 1 unless EvoGrad learns lambda), the static build using none of
#     the shared library;
#   - a program that defines functions named like the library's internals (net_new,
#     config_load, rng_seed) links with the static library and calls its own;
#   - the public header compiles on its own as C99 and as C++;
#   - the man page renders without warnings and holds the commands' and the config's texts;
#   - the bash completion completes commands, options, keys and enum values;
#   - make uninstall leaves nothing; DESTDIR stages under its root.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
fail() {
    echo "install: $*" >&2
    exit 1
}

make -s -j2 install PREFIX="$prefix" >/dev/null
version=$(sed -n 's/^#define EVOGRAD_VERSION "\(.*\)"$/\1/p' lib/evograd/evograd.h)
soversion=${version%.*}
for f in bin/evograd lib/libevograd.a "lib/libevograd.so.$version" "lib/libevograd.so.$soversion" \
    lib/libevograd.so include/evograd/evograd.h include/evograd/status.h \
    lib/pkgconfig/evograd.pc share/man/man1/evograd.1 share/bash-completion/completions/evograd; do
    [ -e "$prefix/$f" ] || fail "make install did not install $f"
done
"$prefix/bin/evograd" --version | grep -qx "evograd $version" || fail "installed evograd --version"
"$prefix/bin/evograd" check configs/default.yaml >/dev/null || fail "installed evograd check"
echo "install: make install PREFIX=$prefix: every file in place; evograd $version runs"

# exported symbols
grep -ho '\beg_[a-z0-9_]*(' lib/evograd/*.h | tr -d '(' | sort -u >"$scratch/public"
nm -D --defined-only "$prefix/lib/libevograd.so" | awk '{ print $NF }' | sort -u >"$scratch/shared"
nm -g --defined-only "$prefix/lib/libevograd.a" | awk 'NF == 3 { print $3 }' | sort -u \
    >"$scratch/static"
for kind in shared static; do
    diff -u "$scratch/public" "$scratch/$kind" >"$scratch/diff" ||
        fail "the $kind library exports other symbols than the public headers declare:
$(cat "$scratch/diff")"
done
echo "install: both libraries export exactly the $(wc -l <"$scratch/public") eg_ functions" \
    "of the public headers"

# the example, shared and static, through pkg-config
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cflags="-std=c11 -Wall -Wextra -Wpedantic -Werror"
# shellcheck disable=SC2046
cc $cflags examples/quadratic.c $(pkg-config --cflags --libs evograd) -lm \
    -Wl,-rpath,"$prefix/lib" -o "$scratch/quadratic-shared"
ldd "$scratch/quadratic-shared" | grep -q "libevograd.so.$soversion => $prefix/lib/" ||
    fail "the shared build does not use $prefix/lib/libevograd.so.$soversion"
# shellcheck disable=SC2046
cc $cflags examples/quadratic.c $(pkg-config --cflags evograd) \
    $(pkg-config --static --libs evograd | sed 's/-levograd/-l:libevograd.a/') -lm \
    -o "$scratch/quadratic-static"
if ldd "$scratch/quadratic-static" | grep -q libevograd; then
    fail "the static build still needs libevograd.so"
fi
for kind in shared static; do
    "$scratch/quadratic-$kind" >"$scratch/out-$kind" || {
        cat "$scratch/out-$kind"
        fail "examples/quadratic ($kind) failed"
    }
done
cmp -s "$scratch/out-shared" "$scratch/out-static" ||
    fail "examples/quadratic prints other numbers shared and static"
echo "install: examples/quadratic.c, shared and static:"
sed 's/^/  /' "$scratch/out-shared"

# the library's internal names are the user's to use
cat >"$scratch/collide.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <evograd/evograd.h>
int net_new(void);
int config_load(void);
void rng_seed(void);
int net_new(void) { return 7; }
int config_load(void) { return 8; }
void rng_seed(void) {}
int main(void)
{
    rng_seed();
    return net_new() == 7 && config_load() == 8 && strcmp(eg_version(), EVOGRAD_VERSION) == 0
               ? 0 : 1;
}
EOF
# shellcheck disable=SC2046
cc $cflags "$scratch/collide.c" $(pkg-config --cflags evograd) \
    $(pkg-config --static --libs evograd | sed 's/-levograd/-l:libevograd.a/') -lm \
    -o "$scratch/collide" || fail "a program with functions named net_new, config_load, rng_seed" \
    "does not link with the static library"
"$scratch/collide" || fail "the program's own net_new/config_load were not the ones called"
echo "install: a program defining net_new, config_load and rng_seed links with the static library"

# the header alone, as C99 and as C++
printf '#include <evograd/evograd.h>\nint main(void) { return eg_version() == 0; }\n' \
    >"$scratch/header.c"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Wpedantic -Werror -c "$scratch/header.c" $(pkg-config --cflags evograd) \
    -o "$scratch/header.o" || fail "<evograd/evograd.h> does not compile as C99"
if command -v c++ >/dev/null; then
    # shellcheck disable=SC2046
    c++ -Wall -Wextra -Werror -x c++ -c "$scratch/header.c" $(pkg-config --cflags evograd) \
        -o "$scratch/header-cxx.o" || fail "<evograd/evograd.h> does not compile as C++"
fi
echo "install: <evograd/evograd.h> compiles alone as C99$(command -v c++ >/dev/null && echo ' and C++')"

# the man page
man1=$prefix/share/man/man1/evograd.1
warnings=$(groff -man -ww -z -Tutf8 "$man1" 2>&1) || fail "groff fails on evograd.1"
[ -z "$warnings" ] || fail "groff warns on evograd.1: $warnings"
text=$(MANWIDTH=100 man -l "$man1" 2>/dev/null)
for want in "evograd run CONFIG.yaml" "evograd sweep CONFIG.yaml" "evograd table RUNS.csv" \
    "train.optimizer.lr" "--stop-after" "rotation.degrees"; do
    grep -qF -- "$want" <<<"$text" || fail "the man page lacks '$want'"
done
echo "install: evograd(1) renders without warnings and holds every command and key"

# the bash completion, against the installed binary
complete_words() { # the words of the command line being completed; prints COMPREPLY
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _evograd
    printf '%s\n' "${COMPREPLY[@]}"
}
# shellcheck disable=SC1091
. "$prefix/share/bash-completion/completions/evograd"
bin=$prefix/bin/evograd
check_completion() { # want words...: the completion of words must include want
    local want=$1
    shift
    complete_words "$@" | grep -qx -- "$want" ||
        fail "completing '$*' does not offer '$want' (got: $(complete_words "$@" | tr '\n' ' '))"
}
check_completion run "$bin" ru
check_completion --quiet "$bin" run --qu
check_completion method.name= "$bin" run configs/default.yaml method.na
check_completion method.name=evograd "$bin" run configs/default.yaml method.name=evo
check_completion task=rotation "$bin" check configs/default.yaml task=ro
check_completion methods "$bin" list me
check_completion resnet32 "$bin" list resnet3
check_completion --jobs "$bin" sweep --jo
echo "install: the bash completion completes commands, options, keys and enum values"

# uninstall, and DESTDIR
make -s uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
make -s install PREFIX=/usr/local DESTDIR="$scratch/stage" >/dev/null
[ -x "$scratch/stage/usr/local/bin/evograd" ] && [ -f "$scratch/stage/usr/local/lib/pkgconfig/evograd.pc" ] ||
    fail "make install DESTDIR= did not stage under its root"
grep -qx 'prefix=/usr/local' "$scratch/stage/usr/local/lib/pkgconfig/evograd.pc" ||
    fail "the staged evograd.pc does not name the final prefix"
make -s uninstall PREFIX=/usr/local DESTDIR="$scratch/stage" >/dev/null
left=$(find "$scratch/stage" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall DESTDIR= left: $left"
echo "install: make uninstall removes every file; DESTDIR stages under its root"

# On a CI machine, as root: the real thing, as the README says (PREFIX /usr/local, the default
# pkg-config path, the loader's cache), then gone again.
if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ]; then
    [ ! -e /usr/local/lib/libevograd.so ] || fail "/usr/local already holds a libevograd"
    make -s install >/dev/null
    unset PKG_CONFIG_PATH
    # shellcheck disable=SC2046
    cc $cflags examples/quadratic.c $(pkg-config --cflags --libs evograd) -lm -o "$scratch/q"
    "$scratch/q" >/dev/null || fail "examples/quadratic against /usr/local failed"
    command -v evograd >/dev/null && evograd --version >/dev/null || fail "evograd not on PATH"
    make -s uninstall >/dev/null
    [ ! -e /usr/local/lib/libevograd.so ] && [ ! -e /usr/local/bin/evograd ] ||
        fail "make uninstall left files in /usr/local"
    echo "install: make install (PREFIX=/usr/local), the example through the default pkg-config" \
        "path and loader, make uninstall"
fi
