#!/usr/bin/env bash
# Build and test cnnext on a free-threaded CPython 3.13 (3.13t, --disable-gil).
#
# Opt-in, not run by CI. From scratch it takes ~15-25 min on 2 cores (most
# of it compiling CPython; that step is skipped when the prefix already
# holds a free-threaded python3.13t).
#
#   scripts/freethreaded.sh            # everything below
#
# Steps:
#   1. CPython 3.13 source: the upstream tarball as Debian's archive ships it
#      (python3.13_X.orig.tar.xz; python.org need not be reachable), sha256
#      checked; ./configure --disable-gil --with-ensurepip=install (no PGO/LTO),
#      make altinstall into $PY313T_PREFIX. Build deps via apt-get when root.
#   2. A venv with numpy, Cython >= 3.1, pytest, hypothesis, threadpoolctl.
#   3. A copy of this checkout's HEAD (git archive; nothing is written into
#      the checkout), pip-installed (non-editable); importing it must leave
#      the GIL off (setup.py declares the extensions free-threading
#      compatible). The suite runs with CNNEXT_TEST_INSTALLED=1, then the
#      thread tests FT_LOOPS times, and (if pytest-run-parallel installs)
#      test_reference on 4 threads (test_seed draws from numpy's global
#      random state, which threads share: not a test for this).
#
# Environment:
#   PY313T_PREFIX   install prefix of the free-threaded python (/opt/py313t)
#   PY313T_VERSION  CPython version to build (3.13.15); PY313T_SHA256 its
#                   tarball's sha256 (known for the default version only)
#   DEBIAN_MIRROR   http://deb.debian.org/debian
#   FT_WORKDIR      where the venv, copies and logs go (a new /tmp dir)
#   FT_LOOPS        runs of the thread tests per copy (5)
#   FT_SKIP_APT=1   do not apt-get the build dependencies
#   FT_NUMPY_SPEC   version spec for numpy (<2.5: the last with cp313t wheels)
#
# Exit status: 0 when every test run passed, 1 otherwise (all runs still run).
set -euo pipefail

cd "$(dirname "$0")/.."
CHECKOUT=$PWD

PREFIX=${PY313T_PREFIX:-/opt/py313t}
PYVER=${PY313T_VERSION:-3.13.15}
DEFAULT_SHA256=1e66a7945a48390ee4c2a4268a0e4185884059a13c4aab6d148aa208deea4a76
if [[ -n ${PY313T_SHA256:-} ]]; then
    SHA256=$PY313T_SHA256
elif [[ $PYVER == 3.13.15 ]]; then
    SHA256=$DEFAULT_SHA256
else
    SHA256=""
fi
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${FT_WORKDIR:-$(mktemp -d /tmp/cnnext-ft.XXXXXX)}
LOOPS=${FT_LOOPS:-5}
JOBS=$(nproc 2>/dev/null || echo 2)
PY=$PREFIX/bin/python3.13t
mkdir -p "$WORK/logs"
echo "== workdir $WORK, prefix $PREFIX, checkout $CHECKOUT ($(git -C "$CHECKOUT" rev-parse --short HEAD))"
if [[ -n $(git -C "$CHECKOUT" status --porcelain --untracked-files=no) ]]; then
    echo "   note: the checkout has uncommitted changes; only HEAD is tested"
fi

exec 3>&1  # timed reports here even when the command's output goes to a log
step() { echo; echo "== $* ($(date +%T))"; }
timed() {  # timed LABEL CMD...: run CMD, print its wall time, keep its status
    local label=$1 t0=$SECONDS rc=0
    shift
    "$@" || rc=$?
    echo "   $label: wall $((SECONDS - t0)) s, exit $rc" >&3
    return $rc
}

# ---------------------------------------------------------------- 1. python
have_ft_python() {
    [[ -x $PY ]] && "$PY" -c 'import sys, sysconfig
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
assert not sys._is_gil_enabled()' 2>/dev/null
}

build_python() {
    if [[ ${FT_SKIP_APT:-0} != 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        step "apt-get build dependencies"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config \
            libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev libsqlite3-dev \
            libreadline-dev uuid-dev libncurses-dev libgdbm-dev xz-utils curl \
            > "$WORK/logs/apt.log"
    fi
    local tarball=python3.13_${PYVER}.orig.tar.xz
    local url=$MIRROR/pool/main/p/python3.13/$tarball
    step "download $url"
    if ! curl -fsSL --retry 3 -o "$WORK/$tarball" "$url"; then
        echo "!! $url not found. Debian's pool keeps only the versions some suite"
        echo "   ships; find the current one with:"
        echo "   curl -s $MIRROR/dists/sid/main/source/Sources.xz | xz -dc |"
        echo "     awk '/^Package: python3.13\$/{p=1} p&&/^Version/{print; exit}'"
        echo "   and set PY313T_VERSION (and PY313T_SHA256) to it."
        exit 1
    fi
    if [[ -n $SHA256 ]]; then
        echo "$SHA256  $WORK/$tarball" | sha256sum -c --quiet -
    else
        echo "   (no sha256 known for $PYVER: $(sha256sum "$WORK/$tarball" | cut -d' ' -f1))"
    fi
    tar -xJf "$WORK/$tarball" -C "$WORK"
    local srcdir=$WORK/Python-$PYVER
    step "configure --disable-gil, make -j$JOBS, make altinstall (logs in $WORK/logs)"
    (cd "$srcdir" &&
        ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install \
            > "$WORK/logs/configure.log" 2>&1 &&
        make -j"$JOBS" > "$WORK/logs/make.log" 2>&1 &&
        make altinstall > "$WORK/logs/install.log" 2>&1) || {
        echo "!! CPython build failed; tail of the logs:"; tail -n 30 "$WORK"/logs/*.log; exit 1; }
    rm -rf "$srcdir"
}

if have_ft_python; then
    step "free-threaded python already at $PY: not rebuilt"
else
    timed "CPython build" build_python
    have_ft_python || { echo "!! $PY is not a free-threaded build"; exit 1; }
fi
"$PY" -VV
"$PY" -c 'import sys; print("   sys._is_gil_enabled() =", sys._is_gil_enabled())'

# ---------------------------------------------------------------- 2. venv
step "venv $WORK/venv"
"$PY" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
# bin/pytest, not python -m pytest: -m would put the copy (its uncompiled
# cnnext/) first on sys.path, shadowing the installed build.
VPYTEST=$WORK/venv/bin/pytest
# Wheels only: numpy >= 2.5 publishes no cp313t wheels (it would build
# numpy from source for ~12 min), and hypothesis's newest sdists need a Rust
# toolchain and crates.io. numpy 2.4.x is the last series with cp313t wheels.
PIP_WHEELS=(-q --only-binary=:all:)
"$VPY" -m pip install "${PIP_WHEELS[@]}" --upgrade pip
"$VPY" -m pip install "${PIP_WHEELS[@]}" "numpy${FT_NUMPY_SPEC:-<2.5}" "cython>=3.1" \
    pytest hypothesis threadpoolctl setuptools
RUN_PARALLEL=0
if "$VPY" -m pip install "${PIP_WHEELS[@]}" pytest-run-parallel; then RUN_PARALLEL=1; fi
"$VPY" -m pip list 2>/dev/null | grep -Ei '^(numpy|cython|pytest|hypothesis|threadpoolctl|setuptools|pytest-run-parallel) '

# ---------------------------------------------------------------- 3. cnnext
STATUS=0
run() {  # run LABEL CMD...: a test run from the copy's root, GIL disabled
    local label=$1; shift
    local t0=$SECONDS rc=0
    (cd "$SRC" && CNNEXT_TEST_INSTALLED=1 "$@") \
        > "$WORK/logs/$label.log" 2>&1 || rc=$?
    echo "   $label: $(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)|(passed|failed|error).* in [0-9.]+s' \
        "$WORK/logs/$label.log" | tail -n 1) [exit $rc, wall $((SECONDS - t0)) s]"
    if [[ $rc != 0 ]]; then
        STATUS=1
        grep -E '^(PARALLEL )?(FAILED|ERROR) ' "$WORK/logs/$label.log" | sed 's/^/     /' || true
    fi
}

test_copy() {  # test_copy NAME
    local name=$1
    SRC=$WORK/src-$name
    step "cnnext copy '$name' in $SRC"
    rm -rf "$SRC"; mkdir -p "$SRC"
    git -C "$CHECKOUT" archive HEAD | tar -x -C "$SRC"
    "$VPY" -m pip uninstall -q -y cnnext 2>/dev/null || true
    timed "build+install cnnext ($name)" \
        "$VPY" -m pip install -v --no-build-isolation "$SRC" > "$WORK/logs/build-$name.log" 2>&1 || {
        echo "!! build failed:"; tail -n 30 "$WORK/logs/build-$name.log"; STATUS=1; return; }
    # setup.py declares the extensions free-threading compatible: importing
    # them must leave the GIL off (else CPython turns it on, with a warning).
    (cd /tmp && "$VPY" -W error::RuntimeWarning -c 'import sys, cnnext, cnnext._conv as c
print("   GIL enabled after import:", sys._is_gil_enabled(), "|", c.__file__)
sys.exit(sys._is_gil_enabled())') 2>&1 | sed 's/^/     /' || { echo "!! importing cnnext enabled the GIL"; STATUS=1; }
    run "suite-$name" "$VPYTEST" -q -p no:cacheprovider
    for i in $(seq "$LOOPS"); do
        run "threads-$name-$i" "$VPYTEST" -q -p no:cacheprovider \
            tests/test_concurrency.py tests/test_threads.py
    done
    if [[ $RUN_PARALLEL == 1 ]]; then
        run "parallel4-$name" "$VPYTEST" -q -p no:cacheprovider --parallel-threads=4 \
            tests/test_reference.py
    fi
}

test_copy head

step "done: logs in $WORK/logs, exit $STATUS"
exit $STATUS
