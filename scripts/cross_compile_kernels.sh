#!/usr/bin/env bash
# Compile the kernels (cnnext/_window_ops.h, _conv_direct.h and the CPU check)
# for the targets of the wheels this machine cannot run: Windows with
# clang-cl's driver, macOS x86_64 and arm64, aarch64 Linux. Checks that each
# compiles without a warning and holds the vector code of its levels (zmm and
# ymm on x86-64, NEON fmla on arm64). The Python parts need each platform's
# headers and are built by .github/workflows/wheels.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

check() {  # target, pattern that must occur in its code, compile command...
    local target=$1 pattern=$2
    shift 2
    if ! "$@" 2>"$out/log" || [ -s "$out/log" ]; then
        cat "$out/log"
        echo "cross-compile: $target failed or warned"
        exit 1
    fi
    local found
    found=$(llvm-objdump -d "$out/k.o" | grep -c -E "$pattern" || true)
    echo "cross-compile: $target: $(stat -c %s "$out/k.o") bytes, $found instructions on /$pattern/"
    [ "$found" -gt 0 ]
}

src=scripts/kernels_for_target.c
check x86_64-pc-windows-msvc 'zmm' clang --driver-mode=cl --target=x86_64-pc-windows-msvc \
    /O2 /clang:-O3 /W3 -Icnnext /c "$src" "/Fo$out/k.o"
for target in x86_64-apple-darwin; do
    check "$target" 'zmm' clang --target="$target" -O3 -Wall -Icnnext -c "$src" -o "$out/k.o"
done
for target in arm64-apple-macos11 aarch64-linux-gnu; do
    check "$target" 'fmla' clang --target="$target" -O3 -Wall -Icnnext -c "$src" -o "$out/k.o"
done
