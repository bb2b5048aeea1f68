#!/usr/bin/env bash
# Build cnnext for aarch64 Linux and run its tests under qemu user-mode
# emulation, then count the NEON kernels' stack spills (opt-in, not CI).
#
#   sudo scripts/qemu_aarch64.sh [PYTEST ARGS...]
#
# Needs root on a Debian/Ubuntu x86-64 host: apt-get, debootstrap, chroot
# and binfmt_misc. An arm64 Debian bookworm rootfs with a venv (numpy,
# Cython, setuptools, pytest, hypothesis, threadpoolctl from PyPI's aarch64
# wheels) is built once into ${CNNEXT_ARM64_ROOT:-/var/tmp/cnnext-arm64} and
# reused. Each run copies this checkout's HEAD (git archive: commit first;
# nothing is written into the checkout), pip-installs it there (not
# editable, so the tests import the installed build) and runs
#   CNNEXT_TEST_INSTALLED=1 pytest -q -p no:cacheprovider ARGS
# (ARGS default: the whole suite; under emulation it takes tens of minutes).
# Last, for each per-level kernel of the installed _conv/_pool (aarch64 has
# the baseline level only: NEON, 16-byte vectors, 32 registers) it prints the
# fmla count and the q-register loads/stores relative to sp, the spills.
# Exits with pytest's status.
set -euo pipefail
exec </dev/null
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="${CNNEXT_ARM64_ROOT:-/var/tmp/cnnext-arm64}"
venv=/opt/cnnext-venv
[ "$(id -u)" -eq 0 ] || { echo "qemu_aarch64: needs root (debootstrap, chroot)" >&2; exit 2; }

need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v aarch64-linux-gnu-objdump >/dev/null || need+=(binutils-aarch64-linux-gnu)
command -v python3 >/dev/null || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The chroot's every exec (pip -> gcc -> as) must reach qemu, so the kernel's
# binfmt_misc handler is required; the F flag lets it work inside the chroot.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || { echo "qemu_aarch64: cannot register qemu-aarch64 in binfmt_misc" >&2; exit 2; }

# Done once. debootstrap removes $root/debootstrap when it succeeds: while
# that is left, an interrupted bootstrap is redone rather than half-used.
if [ ! -x "$root/usr/bin/python3" ] || [ -d "$root/debootstrap" ]; then
    echo "qemu_aarch64: building the arm64 rootfs in $root (5-10 min)"
    [ "$root" != / ] || { echo "qemu_aarch64: CNNEXT_ARM64_ROOT is /" >&2; exit 2; }
    rm -rf --one-file-system "$root"  # a stale /proc mount stays untouched
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3-dev,python3-venv,python3-pip,gcc,g++,ca-certificates \
        bookworm "$root" http://deb.debian.org/debian
fi

mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
}
trap cleanup EXIT
# Subprocess tests and os.cpu_count read /proc; pip and numpy want /dev/null
# and /dev/urandom.
for m in proc dev; do
    mountpoint -q "$root/$m" && continue
    if [ "$m" = proc ]; then mount -t proc proc "$root/proc"; else mount --bind /dev "$root/dev"; fi
    mounted+=("$root/$m")
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# pip in the chroot trusts what the host trusts (a TLS-intercepting proxy's
# CA, say) and goes through the host's proxy, if any.
cp -L "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$root/etc/ssl/host-ca.crt"
pass=(PIP_CERT=/etc/ssl/host-ca.crt)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && pass+=("$v=${!v}")
done
in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH="$venv/bin:/usr/bin:/bin" \
        "${pass[@]}" "$@"
}

# The marker is written once the venv is complete.
if [ ! -e "$root/.cnnext-venv-ready" ]; then
    rm -rf "$root$venv"
    in_root python3 -m venv "$venv"
    # -U: the venv starts with bookworm's setuptools 66, too old for
    # pyproject.toml's license = "MIT" (build-system asks for >= 77).
    in_root pip install -q --disable-pip-version-check -U pip \
        "setuptools>=77" "cython>=3.0" "numpy>=2.0" pytest hypothesis threadpoolctl
    touch "$root/.cnnext-venv-ready"
fi

# HEAD only: uncommitted edits and the checkout's own build/ stay out.
src="$root/root/cnnext"
rm -rf "$src"
mkdir -p "$src"
git -C "$repo" archive HEAD | tar -x -C "$src"
echo "qemu_aarch64: building $(git -C "$repo" rev-parse --short HEAD) for aarch64"
in_root sh -c 'cd /root/cnnext && pip install -q --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall .'

[ "$#" -gt 0 ] || set -- tests
status=0
# BLAS on one thread: its threads only slow emulation down on a small host.
# The pytest script, not python -m pytest: -m would put the copy's root on
# sys.path, and its uncompiled cnnext/ would shadow the installed build.
in_root sh -c 'cd /root/cnnext && CNNEXT_TEST_INSTALLED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    pytest -q -p no:cacheprovider "$@"' pytest "$@" || status=$?

# A spill is a q register stored to or loaded from the stack ([sp, ...]).
# Counted over each *_baseline kernel, then over its innermost loops that
# hold fmla (a backward branch's span with no such loop inside): those run
# once per multiply-add, the rest (the tiles' partial-channel stores go
# through the stack) once per tile. fmla lanes .4s/.2d are whole q registers.
site="$(in_root python3 -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
echo "qemu_aarch64: NEON kernels of the installed build (objdump -d, functions *_baseline)"
for so in "$root$site"/cnnext/_conv*.so "$root$site"/cnnext/_pool*.so; do
    echo "${so##*/}"
    aarch64-linux-gnu-objdump -d --no-show-raw-insn "$so" | python3 -c '
import re, sys
funcs, cur = {}, None
for line in sys.stdin:
    m = re.match(r"([0-9a-f]+) <(.*)>:$", line)
    if m:
        cur = funcs.setdefault(m.group(2), [])
        continue
    m = re.match(r"\s+([0-9a-f]+):\s+(\S+)\s*(.*)", line)
    if m and cur is not None:
        cur.append((int(m.group(1), 16), m.group(2), m.group(3)))
def count(ins, lo=0, hi=1 << 64):
    body = [(op, args) for a, op, args in ins if lo <= a <= hi]
    fmla = sum(op.startswith("fmla") for op, _ in body)
    spill = sum(op in ("ldr", "str", "ldp", "stp", "ldur", "stur")
                and bool(re.match(r"q\d", args)) and "[sp" in args for op, args in body)
    return fmla, spill
print("  %-38s %5s %6s   %-18s %6s  %-12s %-6s %s" % ("function", "fmla", "spills",
      "inner loops: fmla", "spills", "spills/fmla", "lanes", "vector insns"))
for name, ins in funcs.items():
    if not re.search(r"_baseline($|\.)", name) or not ins:
        continue
    if ins[0][1] == "b":  # GCC folded identical code into one
        print("  %-38s same code as %s" % (name, ins[0][2].split("<")[-1].rstrip(">")))
        continue
    loops = []
    for a, op, args in ins:
        t = re.search(r"\b([0-9a-f]+) <", args)
        if op.startswith("b") and not op.startswith("bl") and t and ins[0][0] <= int(t.group(1), 16) <= a:
            lo = int(t.group(1), 16)
            if count(ins, lo, a)[0]:
                loops.append((lo, a))
    inner = [l for l in loops if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]
    f, s = count(ins)
    lf = sum(count(ins, *l)[0] for l in inner)
    ls = sum(count(ins, *l)[1] for l in inner)
    lanes = sorted({m.group(1) for _, op, args in ins if op.startswith("fmla")
                    for m in [re.search(r"v\d+\.(\d+[bhsd])", args)] if m})
    vec = sum(bool(re.search(r"\b(v\d+\.\d*[bhsd]|q\d+)\b", args)) for _, _, args in ins)
    print("  %-38s %5d %6d   %8d loops %4d %6d   %7s      %-6s %d" % (name, f, s, len(inner), lf, ls,
          "%.2f" % (ls / lf) if lf else "-", ",".join(lanes) or "-", vec))
'
done
exit "$status"
