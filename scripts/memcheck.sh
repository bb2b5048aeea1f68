#!/usr/bin/env bash
# Valgrind memcheck over every cnnext kernel (scripts/memcheck_kernels.py).
#
#   scripts/memcheck.sh [PYTHON]
#
# PYTHON (default python3) needs numpy and Cython/setuptools to build. The
# extension is rebuilt from this checkout in a scratch copy with the shipping
# flags plus -g (so reports name source lines), and run under
#   PYTHONMALLOC=malloc valgrind --tool=memcheck
# with BLAS on one thread. Any invalid read or write, use of an uninitialised
# value or bad free is an error, and so is a definite leak whose allocation
# stack passes through cnnext's compiled code (the interpreter's own
# end-of-run leaks are listed, not counted; reference leaks are the business of
# tests/test_leaks.py). scripts/valgrind-python.supp silences one glibc loader
# report. Modules are compiled from source rather than read from .pyc files:
# CPython 3.11 reads an uninitialised digit in int.from_bytes, which importlib
# calls on every .pyc header. Exits non-zero on any error.
set -euo pipefail
exec </dev/null
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/cnnext-memcheck.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

cp -r "$repo/setup.py" "$repo/pyproject.toml" "$repo/cnnext" "$scratch/"
rm -f "$scratch"/cnnext/*.so "$scratch"/cnnext/_*.c
(cd "$scratch" && CFLAGS="-g" "$py" setup.py build_ext --inplace -q >"$scratch/build.log" 2>&1) \
    || { cat "$scratch/build.log" >&2; exit 1; }

log="${MEMCHECK_LOG:-$scratch/valgrind.log}"
cd "$scratch"
status=0
PYTHONPATH="$scratch" PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    PYTHONPYCACHEPREFIX="$scratch/no-pyc" PYTHONDONTWRITEBYTECODE=1 \
    valgrind --tool=memcheck --error-exitcode=99 --track-origins=yes \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
    --suppressions="$repo/scripts/valgrind-python.supp" --log-file="$log" \
    "$py" "$repo/scripts/memcheck_kernels.py" || status=$?
echo "memcheck: valgrind exit status $status; report: $log"
grep -E "ERROR SUMMARY|definitely lost:" "$log" | sed 's/^==[0-9]*== */  /'
# Definite leaks allocated through cnnext's compiled code (frames __pyx_*).
cnnext_leaks="$(awk '/definitely lost in loss record/ {rec=1; hit=0; next}
                     rec && /__pyx_|\/cnnext\/_(conv|pool)/ {hit=1}
                     rec && /^==[0-9]+== *$/ {if (hit) n++; rec=0}
                     END {print n+0}' "$log")"
echo "  definite leaks through cnnext code: $cnnext_leaks"
[ "$cnnext_leaks" -eq 0 ] || status=98
if [ "$status" -ne 0 ]; then
    echo "memcheck: FAILED (exit $status); full report: $log" >&2
    [ -z "${MEMCHECK_LOG:-}" ] && sed -n '1,200p' "$log" >&2
    exit 1
fi
echo "memcheck: clean"
