#!/usr/bin/env bash
# layers.sh - the library's floors, checked from the #include lines (make test runs it):
#   - no two modules (a .c/.h pair) include each other, directly or through others;
#   - lib/tasks/ (the algorithms) includes nothing from lib/run/ or io/config.h: a task's
#     algorithm gets plain settings structs, and only lib/run/ reads the config;
#   - nothing below lib/run/ includes it (the public API, lib/evograd/, sits above it).
# Prints each violation and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
bad=0
for f in $(find lib runner -name '*.[ch]' | sort); do
    mod=${f%.*}
    dir=$(dirname "$f")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        if [ -f "$dir/$inc" ]; then
            target=$(realpath --relative-to=. "$dir/$inc")
        elif [ -f "lib/$inc" ]; then
            target="lib/$inc"
        else
            continue
        fi
        tmod=${target%.*}
        [ "$tmod" = "$mod" ] && continue
        echo "$mod $tmod" >>"$edges"
        case $f in
        lib/tasks/*)
            case $tmod in lib/run/* | lib/io/config)
                echo "layers: $f includes $inc (lib/tasks takes plain settings: not the run" \
                    "layer, not the config)"
                bad=1 ;;
            esac ;;
        lib/run/* | lib/evograd/evograd.c | runner/*) ;;
        *)
            case $tmod in lib/run/*)
                echo "layers: $f includes $inc (below the run layer)"
                bad=1 ;;
            esac ;;
        esac
    done
done
if ! tsort "$edges" >/dev/null 2>"$edges.err"; then
    echo "layers: modules include each other in a loop:"
    sed 's/^/  /' "$edges.err"
    bad=1
fi
rm -f "$edges.err"
[ "$bad" -eq 0 ] && echo "layers: $(sort -u "$edges" | wc -l) include edges between modules," \
    "no loop"
exit "$bad"
