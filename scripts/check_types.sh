#!/usr/bin/env bash
# Type-check the public API's stubs (cnnext/__init__.pyi, shipped with py.typed):
#   1. mypy --strict on examples/typed_usage.py, which calls every public function;
#   2. mypy's stubtest, which compares the stubs with the runtime module.
# Usage: scripts/check_types.sh [PYTHON]
#   PYTHON (default: python3) must import cnnext (e.g. an installed wheel) and
#   have mypy installed. Runs from a scratch directory so the checkout's cnnext/
#   cannot shadow the installed package. For a checkout with the extension
#   built in place: PYTHONPATH=$PWD MYPYPATH=$PWD scripts/check_types.sh
#   (mypy cannot follow setuptools' editable installs).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
echo "check_types: cnnext from $("$py" -c 'import cnnext, os; print(os.path.dirname(cnnext.__file__))')"
"$py" -m mypy --strict --no-incremental "$repo/examples/typed_usage.py"
"$py" -m mypy.stubtest --mypy-config-file "$repo/scripts/stubtest.ini" cnnext
