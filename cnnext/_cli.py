"""The command line: ``python -m cnnext train`` and ``python -m cnnext predict``.

``train`` with no arguments trains the assignment's ConvNet
(CONV -> RELU -> MAXPOOL -> CONV -> RELU -> MAXPOOL -> FLATTEN -> DENSE ->
softmax) on the handwritten digits that scikit-learn ships (8x8 grayscale,
1,797 images, no network needed), with a fixed seed and a held-out test
split. ``--data`` trains on the course's SIGNS HDF5 files or on any ``.npz``
holding ``X`` (m, H, W, C) and ``y``.

Every failure the user can cause (a missing file, wrong keys or shapes,
labels out of range, a missing optional dependency) ends in one line on
stderr, ``cnnext: error: ...``, and exit status 1 (2 for bad options).
Set ``CNNEXT_DEBUG=1`` to get the traceback instead.

The optional dependencies (scikit-learn, h5py, matplotlib, threadpoolctl)
are imported only when the option that needs them is used.

Threads: ``--threads N`` limits BLAS and OpenMP (through threadpoolctl) and
cnnext's own kernel threads to N; without threadpoolctl, ``python -m cnnext``
re-executes itself with ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``... set,
since BLAS reads them only when numpy loads. Without ``--threads``, BLAS runs
single-threaded (when threadpoolctl is installed and no ``*_NUM_THREADS``
variable is set): the GEMMs of small images are too small to share, and
spinning BLAS threads slow a busy machine down several times. Results are
deterministic for a given seed and thread setting.
"""
import argparse
import os
import sys
import time

import numpy as np

from . import nn
from ._version import __version__

EXTRA_HINT = 'install it with: pip install "cnnext[examples]"'
_PIP_NAMES = {"sklearn": "scikit-learn"}
TEST_FRACTION = 0.2
DEFAULTS = {"epochs": 20, "batch_size": 32, "seed": 0,
            "lr": {"adam": 0.003, "sgd": 0.05}}


class CLIError(Exception):
    """An error caused by the user's input; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _require(module, why):
    """Import an optional dependency, or fail with one clear line."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        name = _PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
        raise CLIError(f"{why} needs {name}, which is not installed; "
                       f"{EXTRA_HINT}") from None


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

class Dataset:
    """Images ``X`` (m, H, W, C) as floats, labels ``y`` (m,) int64 or None."""

    def __init__(self, X, y, classes=None, source=""):
        self.X, self.y, self.classes, self.source = X, y, classes, source

    def __len__(self):
        return self.X.shape[0]

    def subset(self, idx):
        return Dataset(self.X[idx], None if self.y is None else self.y[idx],
                       self.classes, self.source)


def _images(X, where):
    """Validate and scale an image array: uint8 0..255 -> [0, 1], (m,H,W) -> (m,H,W,1)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise CLIError(f"{where}: images must be numbers; got dtype {X.dtype}")
    if X.ndim == 3:
        X = X[..., np.newaxis]
    if X.ndim != 4:
        raise CLIError(f"{where}: images must have shape (m, H, W, C) (or (m, H, W) "
                       f"for grayscale); got shape {X.shape}")
    if min(X.shape) < 1:
        raise CLIError(f"{where}: no images (shape {X.shape})")
    if X.dtype == np.uint8:
        X = X / np.float32(255)
    X = X.astype(np.float64 if X.dtype == np.float64 else np.float32, copy=False)
    if not np.isfinite(X).all():
        raise CLIError(f"{where}: images contain NaN or infinite values")
    return X


def _labels(y, m, where):
    """Validate labels: m non-negative integers (shapes (m,), (1, m), (m, 1))."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise CLIError(f"{where}: labels must be integers; got dtype {y.dtype}")
    if y.size != m or (y.ndim > 1 and max(y.shape) != m):
        raise CLIError(f"{where}: expected {m} labels, one per image, of shape ({m},); "
                       f"got shape {y.shape}")
    y = y.reshape(m)
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise CLIError(f"{where}: labels must be whole numbers (class indices)")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise CLIError(f"{where}: labels out of range: found {y.min()}, labels must "
                       f"be class indices 0, 1, 2, ...")
    return y


def _classes(raw):
    if raw is None:
        return None
    raw = np.asarray(raw).reshape(-1)
    return [v.decode() if isinstance(v, bytes) else str(v) for v in raw.tolist()]


def _check_zip(path):
    import zipfile
    if not zipfile.is_zipfile(path):
        raise CLIError(f"{path}: not a .npz file (not a zip archive)")


def _load_npz(path, require_labels):
    _check_zip(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(data.files)
            if "X" not in keys:
                raise CLIError(f"{path}: no array 'X' (found: {', '.join(keys) or 'none'}); "
                               f"a data .npz holds X (m, H, W, C) and y (m,)")
            if require_labels and "y" not in keys:
                raise CLIError(f"{path}: no array 'y' (found: {', '.join(keys)}); "
                               f"a data .npz holds X (m, H, W, C) and y (m,)")
            X = _images(data["X"], path)
            y = _labels(data["y"], len(X), path) if "y" in keys else None
            classes = _classes(data["classes"]) if "classes" in keys else None
    except CLIError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # not a zip, pickled objects...
        raise CLIError(f"{path}: cannot read it as a .npz file: {exc}") from None
    return Dataset(X, y, classes, path)


def _load_h5(path, prefixes, require_labels):
    """Read ``<prefix>_x``/``<prefix>_y`` for the first prefix the file has."""
    h5py = _require("h5py", "reading .h5 files")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise CLIError(f"{path}: cannot open it as an HDF5 file: {exc}") from None
    with fh:
        keys = sorted(fh.keys())
        prefix = next((p for p in prefixes if f"{p}_x" in fh), None)
        if prefix is None:
            wanted = " or ".join(f"'{p}_x'" for p in prefixes)
            raise CLIError(f"{path}: no dataset {wanted} (found: "
                           f"{', '.join(keys) or 'none'})")
        try:
            X = _images(fh[f"{prefix}_x"][()], f"{path}:{prefix}_x")
            y = None
            if f"{prefix}_y" in fh:
                y = _labels(fh[f"{prefix}_y"][()], len(X), f"{path}:{prefix}_y")
            elif require_labels:
                raise CLIError(f"{path}: no dataset '{prefix}_y' for the labels of "
                               f"'{prefix}_x' (found: {', '.join(keys)})")
            classes = _classes(fh["list_classes"][()]) if "list_classes" in fh else None
        except (AttributeError, TypeError) as exc:  # a group where a dataset belongs
            raise CLIError(f"{path}: unexpected layout: {exc}") from None
    return Dataset(X, y, classes, path)


def _load_file(path, prefixes, require_labels=True):
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a data file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        return _load_npz(path, require_labels)
    if ext in (".h5", ".hdf5"):
        return _load_h5(path, prefixes, require_labels)
    raise CLIError(f"{path}: unknown data format {ext or '(no extension)'}; "
                   f"use a .npz (X, y) or a .h5 (train_set_x, train_set_y, ...)")


def _stratified_split(y, fraction, rng):
    """Indices (train, test), test holding ``fraction`` of each class."""
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[:int(round(fraction * len(idx)))])
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y)), test), test


def _digits(seed):
    """scikit-learn's digits, scaled to [0, 1], split into (train, test)."""
    datasets = _require("sklearn.datasets", "the default digits data set")
    digits = datasets.load_digits()
    X = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    data = Dataset(X, digits.target.astype(np.int64),
                   [str(c) for c in digits.target_names], "digits")
    train, test = _stratified_split(data.y, TEST_FRACTION, np.random.default_rng(seed))
    return data.subset(train), data.subset(test)


def _train_test(args, rng):
    """The (train, test) Datasets the options ask for."""
    if args.data is None:
        if args.test is not None:
            raise CLIError("--test needs --data (the default digits data set "
                           "comes with its own held-out split)")
        return _digits(args.seed)
    train = _load_file(args.data, ["train_set"])
    if args.test is not None:
        test = _load_file(args.test, ["test_set", "train_set"])
    elif args.data.lower().endswith((".h5", ".hdf5")) and _h5_has(args.data, "test_set_x"):
        test = _load_file(args.data, ["test_set"])
    else:
        if len(train) < 2:
            raise CLIError(f"{args.data}: {len(train)} image(s) cannot be split into "
                           f"a training and a test set; give --test")
        idx_train, idx_test = _stratified_split(train.y, TEST_FRACTION, rng)
        if len(idx_test) == 0:
            idx_train, idx_test = idx_train[1:], idx_train[:1]
        train, test = train.subset(idx_train), train.subset(idx_test)
        test.source = f"{args.data} (held-out {TEST_FRACTION:.0%})"
    if test.X.shape[1:] != train.X.shape[1:]:
        raise CLIError(f"{test.source}: test images have shape {test.X.shape[1:]} but "
                       f"training images have shape {train.X.shape[1:]}")
    return train, test


def _h5_has(path, key):
    import h5py
    with h5py.File(path, "r") as fh:
        return key in fh


def _n_classes(train, test):
    classes = train.classes or test.classes
    n = len(classes) if classes else int(train.y.max()) + 1
    for part, what in ((train, "training"), (test, "test")):
        if part.y is not None and part.y.max() >= n:
            source = f"{len(classes)} classes in list_classes" if classes else \
                f"labels 0..{n - 1} in the training data"
            raise CLIError(f"{part.source}: {what} labels out of range: found label "
                           f"{part.y.max()} but there are {source}")
    if n < 2:
        raise CLIError(f"{train.source}: a classifier needs at least 2 classes; "
                       f"the labels hold {n}")
    return n, classes


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def course_model(input_shape, n_classes, dtype="float32", seed=0):
    """The assignment's ConvNet, its filter sizes adapted to the input size.

    CONV(f1, 16 filters, same padding) -> RELU -> MAXPOOL(p1) -> CONV(3, 32
    filters, same padding) -> RELU -> MAXPOOL(p2) -> FLATTEN -> DENSE(n_classes),
    trained through a softmax. For 8x8 digits: f1=3, p1=p2=2 (8 -> 4 -> 2). For
    the course's 64x64 SIGNS: f1=5, p1=8, p2=4 (64 -> 8 -> 2), the course's pools.

    Parameters
    ----------
    input_shape : tuple of int
        (n_H, n_W, n_C) of one image.
    n_classes : int
    dtype : {"float32", "float64"}
    seed : int
        Seed of the initial weights.

    Returns
    -------
    model : cnnext.nn.Sequential
        Built, ready to train.
    """
    side = min(input_shape[0], input_shape[1])
    f1 = 3 if side <= 16 else 5
    p1 = min(max(2, side // 8), side)
    p2 = max(1, ((side - p1) // p1 + 1) // 2)
    return nn.Sequential([
        nn.Conv2D(16, f1, stride=1, pad=f1 // 2), nn.ReLU(), nn.MaxPool2D(p1),
        nn.Conv2D(32, 3, stride=1, pad=1), nn.ReLU(), nn.MaxPool2D(p2),
        nn.Flatten(), nn.Dense(n_classes),
    ], input_shape=input_shape, dtype=dtype, seed=seed)


def describe(model):
    """The architecture in the course's notation, e.g. ``CONV 3x3x16 s1 p1 -> RELU ...``."""
    parts = []
    for layer in model.layers:
        if isinstance(layer, nn.Conv2D):
            parts.append(f"CONV {layer.f}x{layer.f}x{layer.n_C} s{layer.stride} p{layer.pad}")
        elif isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D)):
            kind = "MAXPOOL" if isinstance(layer, nn.MaxPool2D) else "AVGPOOL"
            parts.append(f"{kind} {layer.f}x{layer.f} s{layer.stride}")
        elif isinstance(layer, nn.Dense):
            parts.append(f"DENSE {layer.n_out}")
        else:
            parts.append(type(layer).__name__.upper())
    return " -> ".join(parts + ["softmax"])


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

class Progress:
    """A one-line progress bar per epoch: redrawn in place on a terminal,
    printed once at the end of the epoch otherwise (logs, pipes)."""

    def __init__(self, n_epochs, total, stream=None, width=24):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.n_epochs, self.total, self.width = n_epochs, total, width
        self._last_draw = 0.0

    def start(self, epoch):
        self.epoch, self.t0 = epoch, time.perf_counter()
        self.done, self.loss_sum, self.correct = 0, 0.0, 0

    def update(self, n, loss, correct):
        self.done += n
        self.loss_sum += loss * n
        self.correct += correct
        now = time.perf_counter()
        if self.tty and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    @property
    def loss(self):
        return self.loss_sum / max(self.done, 1)

    @property
    def accuracy(self):
        return self.correct / max(self.done, 1)

    def _line(self):
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        filled = self.width * self.done // max(self.total, 1)
        digits = len(str(self.n_epochs))
        return (f"epoch {self.epoch:>{digits}}/{self.n_epochs} "
                f"[{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total}  loss {self.loss:.4f}  "
                f"acc {self.accuracy:6.2%}  {self.done / elapsed:,.0f} img/s")

    def end(self, extra=""):
        line = self._line() + extra
        self.stream.write(("\r" + line + "\n") if self.tty else line + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class _Limits:
    """Thread limits set for one command; :meth:`restore` undoes them, so that
    in-process callers of :func:`main` get their thread pools back."""

    def __init__(self):
        self._undo = []

    def add(self, undo):
        self._undo.append(undo)

    def __bool__(self):
        return bool(self._undo)

    def restore(self):
        while self._undo:
            self._undo.pop()()


def _limit_threads(n, argv, allow_reexec):
    """Limit BLAS, OpenMP and cnnext's own kernels to n threads.

    With threadpoolctl installed, limit the thread pools already loaded
    (numpy's BLAS, any OpenMP runtime). Without it, those pools read their
    size from the environment when they load, which happened when numpy
    was imported: when run as ``python -m cnnext``, re-execute the process
    with the variables set; otherwise warn. cnnext's own kernel threads are
    set with ``cnnext.set_num_threads`` when the build has it.

    Returns
    -------
    limits : _Limits
    """
    import cnnext
    limits = _Limits()
    try:
        import threadpoolctl
    except ImportError:
        if not all(os.environ.get(v) == str(n) for v in _THREAD_VARS):
            if allow_reexec:
                env = dict(os.environ, **{v: str(n) for v in _THREAD_VARS})
                sys.stdout.flush()
                os.execve(sys.executable, [sys.executable, "-m", "cnnext", *argv], env)
            print(f"cnnext: warning: --threads {n} limits BLAS only with "
                  f"threadpoolctl when cnnext is run in-process; set "
                  f"OMP_NUM_THREADS={n} OPENBLAS_NUM_THREADS={n} before starting "
                  f"Python instead", file=sys.stderr)
    else:
        limits.add(threadpoolctl.threadpool_limits(limits=n).restore_original_limits)
    set_num_threads = getattr(cnnext, "set_num_threads", None)
    if set_num_threads is not None:
        old = cnnext.get_num_threads()
        set_num_threads(n)
        limits.add(lambda: set_num_threads(old))
    return limits


def _default_blas_limit():
    """Without --threads: run BLAS single-threaded, if threadpoolctl is installed
    and the environment does not already choose a thread count.

    cnnext's GEMMs on small images are tiny (e.g. 2048 x 9 x 16 for the
    digits); multi-threaded BLAS spends more time synchronising than
    computing, and on a busy machine its spinning threads make a training
    step many times slower. Other thread pools (cnnext's own kernels,
    OpenMP) keep their defaults.

    Returns
    -------
    limits : _Limits
        Empty when nothing was limited.
    """
    limits = _Limits()
    if any(v in os.environ for v in _THREAD_VARS):
        return limits
    try:
        import threadpoolctl
    except ImportError:
        return limits
    limits.add(threadpoolctl.threadpool_limits(
        limits=1, user_api="blas").restore_original_limits)
    return limits


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def _check_output_path(path, option):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: directory {parent} does not exist")


def _plot(history, path):
    matplotlib = _require("matplotlib", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history["loss"], label="train")
    ax1.plot(epochs, history["test_loss"], label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, history["acc"], label="train")
    ax2.plot(epochs, history["test_acc"], label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise CLIError(f"--plot {path}: cannot write the figure: {exc}") from None
    finally:
        plt.close(fig)


def _cosine_lr(lr, epoch, n_epochs):
    """Learning rate of epoch 1..n_epochs: cosine decay from lr to lr/100."""
    t = (epoch - 1) / max(n_epochs - 1, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t)))


def cmd_train(args):
    t_start = args.t_start
    if args.save:
        _check_output_path(args.save, "--save")
    if args.plot:
        _check_output_path(args.plot, "--plot")
        _require("matplotlib", "--plot")
    lr = args.lr if args.lr is not None else DEFAULTS["lr"][args.optimizer]

    rng = np.random.default_rng(args.seed)
    train, test = _train_test(args, rng)
    n_classes, classes = _n_classes(train, test)
    try:
        model = course_model(train.X.shape[1:], n_classes, args.dtype, args.seed)
    except ValueError as exc:
        raise CLIError(f"{train.source}: images of shape {train.X.shape[1:]} do not "
                       f"fit the model: {exc}") from None
    model.meta = {"classes": classes or [str(c) for c in range(n_classes)],
                  "data": train.source, "seed": args.seed}
    optimizer = nn.Adam(lr) if args.optimizer == "adam" else nn.SGD(lr, momentum=0.9)
    X = train.X.astype(model.dtype, copy=False)
    Xt = test.X.astype(model.dtype, copy=False)

    print(f"cnnext {__version__}: training on {train.source}: {len(train)} train / "
          f"{len(test)} test images of shape {train.X.shape[1:]}, {n_classes} classes; "
          f"{args.optimizer} lr={lr:g} (cosine decay), batch {args.batch_size}, "
          f"{args.dtype}, seed {args.seed}\nmodel: {describe(model)}", flush=True)
    progress = Progress(args.epochs, len(train))
    history = {"loss": [], "acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(1, args.epochs + 1):
        progress.start(epoch)
        optimizer.lr = _cosine_lr(lr, epoch, args.epochs)
        order = rng.permutation(len(train))
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            loss, correct = model.train_step(X[batch], train.y[batch], optimizer)
            if not np.isfinite(loss):
                raise CLIError(f"training diverged at epoch {epoch} (loss {loss}); "
                               f"try a smaller --lr (now {lr:g})")
            progress.update(len(batch), loss, correct)
        test_loss, test_acc = model.evaluate(Xt, test.y)
        for key, value in zip(history, (progress.loss, progress.accuracy,
                                        test_loss, test_acc)):
            history[key].append(value)
        progress.end(f"  | test loss {test_loss:.4f}  acc {test_acc:6.2%}")

    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            raise CLIError(f"--save {args.save}: cannot write the model: {exc}") from None
    if args.plot:
        _plot(history, args.plot)
    wall = time.perf_counter() - t_start
    n_right = int(round(history["test_acc"][-1] * len(test)))
    threads = args.threads if args.threads is not None else args.default_threads
    print(f"test accuracy {history['test_acc'][-1]:.2%} ({n_right}/{len(test)}) after "
          f"{args.epochs} epoch{'s' * (args.epochs != 1)} | wall time {wall:.1f} s | threads {threads}"
          + (f" | saved {args.save}" if args.save else "")
          + (f" | plot {args.plot}" if args.plot else ""), flush=True)
    return 0


def cmd_predict(args):
    t_start = args.t_start
    if not os.path.exists(args.model):
        raise CLIError(f"{args.model}: no such file")
    _check_zip(args.model)
    try:
        model = nn.load(args.model)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise CLIError(f"{args.model}: not a model saved by 'cnnext train --save': "
                       f"{exc}") from None
    if args.data == "digits":
        _, data = _digits(int(model.meta.get("seed", 0)))
    else:
        data = _load_file(args.data, ["test_set", "train_set"], require_labels=False)
    if data.X.shape[1:] != model.input_shape:
        raise CLIError(f"{data.source}: images have shape {data.X.shape[1:]} but the "
                       f"model was trained on images of shape {model.input_shape}")
    classes = model.meta.get("classes") or [str(c) for c in range(model.output_shape[0])]
    if data.y is not None and data.y.max() >= len(classes):
        raise CLIError(f"{data.source}: labels out of range: found label "
                       f"{data.y.max()} but the model has {len(classes)} classes "
                       f"(0..{len(classes) - 1})")
    pred = model.predict(data.X)
    if not args.quiet:
        out = [("index\tpredicted" + ("\tlabel" if data.y is not None else ""))]
        for i, p in enumerate(pred):
            row = f"{i}\t{classes[p]}"
            if data.y is not None:
                row += f"\t{classes[data.y[i]]}"
            out.append(row)
        print("\n".join(out))
    wall = time.perf_counter() - t_start
    if data.y is not None:
        right = int((pred == data.y).sum())
        print(f"accuracy {right / len(pred):.2%} ({right}/{len(pred)}) on "
              f"{data.source} | wall time {wall:.1f} s")
    else:
        print(f"predicted {len(pred)} images of {data.source} (no labels, no "
              f"accuracy) | wall time {wall:.1f} s")
    return 0


# --------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------

def _positive(kind):
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or value != value:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}")
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
    parser = _Parser(prog="cnnext", description="Train and run the course's ConvNet "
                     "on cnnext's compiled conv and pool kernels.")
    parser.add_argument("--version", action="version", version=f"cnnext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,predict}",
                                parser_class=_Parser)
    sub.required = True

    train = sub.add_parser(
        "train", help="train the ConvNet (default: scikit-learn's digits)",
        description="Train CONV->RELU->MAXPOOL->CONV->RELU->MAXPOOL->FLATTEN->DENSE->"
                    "softmax. With no --data: scikit-learn's 8x8 digits, "
                    f"{TEST_FRACTION:.0%} held out for testing.")
    train.add_argument("--data", metavar="FILE",
                       help="training data: a .h5 with train_set_x/train_set_y "
                            "(the course's SIGNS files) or a .npz with X (m,H,W,C) and y")
    train.add_argument("--test", metavar="FILE",
                       help="test data (.h5 with test_set_x/test_set_y, or .npz); "
                            f"default: the .h5's test_set_* or {TEST_FRACTION:.0%}% "
                            "of --data held out")
    train.add_argument("--epochs", type=_positive(int), default=DEFAULTS["epochs"],
                       help="passes over the training data (default %(default)s)")
    train.add_argument("--batch-size", type=_positive(int), default=DEFAULTS["batch_size"],
                       help="images per gradient step (default %(default)s)")
    train.add_argument("--lr", type=_positive(float), default=None,
                       help="initial learning rate, cosine-decayed to 1%% of it by the "
                            "last epoch (default 0.003 for adam, 0.05 for sgd)")
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
                       help="plot loss and accuracy per epoch (needs matplotlib)")
    train.add_argument("--threads", type=_positive(int), default=None,
                       help="limit BLAS and OpenMP to this many threads (through "
                            "threadpoolctl if installed). Default: BLAS single-threaded "
                            "when threadpoolctl is installed and no *_NUM_THREADS "
                            "variable is set, as the GEMMs are too small to share")
    train.set_defaults(run=cmd_train)

    predict = sub.add_parser(
        "predict", help="predict with a saved model",
        description="Print the model's prediction for each image, and the accuracy "
                    "when the data has labels.")
    predict.add_argument("model", help="a model saved by 'cnnext train --save'")
    predict.add_argument("data", help="a .npz (X, optional y), a .h5 (test_set_x or "
                         "train_set_x), or 'digits' for the digits test split")
    predict.add_argument("-q", "--quiet", action="store_true",
                         help="print only the accuracy line")
    predict.add_argument("--threads", type=_positive(int), default=None,
                         help="limit BLAS/OpenMP threads")
    predict.set_defaults(run=cmd_predict)
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
        0 on success, 1 on bad input, 2 on bad options, 130 on Ctrl-C.
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
        if args.threads is not None:
            limits = _limit_threads(args.threads, argv, allow_reexec)
        else:
            limits = _default_blas_limit()
        args.default_threads = "default (BLAS 1)" if limits else "default"
        return args.run(args)
    except CLIError as exc:
        print(f"cnnext: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnext: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("CNNEXT_DEBUG"):
            raise
        print(f"cnnext: error: unexpected {type(exc).__name__}: {exc} (set "
              f"CNNEXT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        if limits is not None:
            limits.restore()
