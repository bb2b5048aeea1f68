#!/usr/bin/env bash
# Type-check the stubs shipped with py.typed (cnnext/__init__.pyi, cnnext/nn/*.pyi):
#   1. mypy --strict on the examples that use them the way a user does:
#      examples/typed_usage.py calls every public function, examples/typed_layers.py
#      builds, trains, saves and reloads a model with cnnext.nn; then runs both,
#      so they stay working code;
#   2. mypy's stubtest, which compares the stubs with the runtime modules
#      (cnnext and cnnext.nn's submodules; settings in scripts/stubtest.ini).
# Usage: scripts/check_types.sh [PYTHON]
#   PYTHON (default: python3) must import cnnext (e.g. an installed wheel) and
#   have mypy installed. Runs from a scratch directory so the checkout's cnnext/
#   cannot shadow the installed package. For a checkout with the extension
#   built in place: PYTHONPATH=$PWD MYPYPATH=$PWD scripts/check_types.sh
#   (mypy cannot follow setuptools' editable installs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
examples=("$repo/examples/typed_usage.py" "$repo/examples/typed_layers.py")
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
echo "check_types: cnnext from $("$py" -c 'import cnnext, os; print(os.path.dirname(cnnext.__file__))')"
"$py" -m mypy --strict --no-incremental "${examples[@]}"
for example in "${examples[@]}"; do
    echo "check_types: running $(basename "$example")"
    "$py" "$example" > /dev/null
done
"$py" -m mypy.stubtest --mypy-config-file "$repo/scripts/stubtest.ini" \
    --allowlist "$repo/scripts/stubtest-allowlist.txt" --ignore-unused-allowlist cnnext
