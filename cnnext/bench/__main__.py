"""``python -m cnnext.bench``: the ``cnnext-bench`` command (see :mod:`cnnext.bench`)."""
import sys

from .cli import console_main

if __name__ == "__main__":
    sys.exit(console_main())
