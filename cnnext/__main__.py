"""``python -m cnnext``: see :mod:`cnnext._cli`."""
import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(allow_reexec=True))
