"""cnnext on Dask (cnnext._dask): inference over dask arrays, the eight
functions inside map_blocks, the worker thread cap, and data-parallel
training that gives the one-process model.

One LocalCluster of 2 worker processes (1 thread each) on loopback serves
the whole module; it is closed at the end. Skipped without distributed.
"""
import doctest
import os
import subprocess
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import cnnext  # noqa: E402
from cnnext import _dask, nn  # noqa: E402
from cnnext._threads import available_cpus  # noqa: E402

DTYPES = [np.float32, np.float64]
# Weights after a few steps, data-parallel against one process: the shards'
# gradient sums differ from the whole batch's by rounding only.
TRAIN_RTOL = {np.float32: 1e-4, np.float64: 1e-10}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def small_model(dtype=np.float64, seed=0):
    return nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
                          nn.Flatten(), nn.Dense(3)],
                         input_shape=(8, 8, 1), dtype=dtype, seed=seed)


def small_data(m=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((m, 8, 8, 1)), rng.integers(0, 3, m)


def reference_proba(model, X, ref):
    """small_model's softmax computed with the test suite's numpy reference
    of the eight functions, from the model's weights."""
    (_, W1), (_, b1), (_, W2), (_, b2) = model.parameters()
    Z = ref.conv_forward(X, W1, b1, {"stride": 1, "pad": 1})
    A = ref.pool_forward(np.maximum(Z, 0), {"f": 2, "stride": 2}, mode="max")
    logits = A.reshape(len(X), -1) @ W2.astype(np.float64) + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_proba_dask_matches_reference_on_the_cluster(client, dtype, ref,
                                                             assert_close):
    model = small_model(dtype)
    X, _ = small_data(37)
    # Chunked on the batch axis unevenly and on height too: the height
    # chunks are merged before the model sees a block.
    Xd = da.from_array(X, chunks=(10, 4, 8, 1))
    P = _dask.predict_proba_dask(model, Xd, batch_size=4, client=client)
    assert isinstance(P, da.Array)
    assert P.chunks == ((10, 10, 10, 7), (3,))
    assert P.dtype == dtype
    assert isinstance(P._meta, np.ndarray) and P._meta.dtype == dtype
    result = P.compute()
    assert result.dtype == dtype
    assert_close(result, reference_proba(model, X, ref), dtype)


def test_predict_dask_matches_in_memory_predict(client):
    model = small_model(np.float32)
    X, _ = small_data(25)
    labels = _dask.predict_dask(model, da.from_array(X, chunks=6), client=client)
    assert labels.chunks == ((6, 6, 6, 6, 1),)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))


def test_model_predict_takes_a_dask_array_and_returns_one(client):
    # Sequential.predict / predict_proba hand a dask array to this module and
    # give back a dask array with the in-memory results.
    model = small_model()
    X = small_data()[0]
    Xd = da.from_array(X, chunks=7)
    P, classes = model.predict_proba(Xd), model.predict(Xd)
    assert isinstance(P, da.Array) and isinstance(classes, da.Array)
    assert P.chunks[0] == Xd.chunks[0]
    # Blocks of 7 examples: the dense layer's GEMM may round differently.
    np.testing.assert_allclose(P.compute(), model.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(classes.compute(), model.predict(X))


def test_predict_proba_dask_on_the_local_scheduler(ref, assert_close):
    # No distributed client: Dask's own schedulers run the blocks in this process.
    model = small_model(np.float64)
    X, _ = small_data(12)
    P = _dask.predict_proba_dask(model, da.from_array(X, chunks=5))
    for scheduler in ("sync", "threads"):
        assert_close(P.compute(scheduler=scheduler), reference_proba(model, X, ref))


class CountingSequential(nn.Sequential):
    """A Sequential that counts its forward passes (shared by its copies)."""
    calls = []

    def forward(self, X):
        self.calls.append(len(X))
        return super().forward(X)


def test_building_the_graph_never_runs_the_model():
    CountingSequential.calls.clear()
    model = CountingSequential(small_model().layers, input_shape=(8, 8, 1),
                               dtype="float64")
    X, _ = small_data(9)
    P = _dask.predict_proba_dask(model, da.from_array(X, chunks=4), batch_size=2)
    assert CountingSequential.calls == []
    P.compute(scheduler="sync")
    # Only real examples went through it, in batches of at most 2.
    assert sum(CountingSequential.calls) == 9
    assert max(CountingSequential.calls) == 2


def test_the_model_is_one_key_of_the_graph():
    model = small_model()
    X, _ = small_data(20)
    P = _dask.predict_proba_dask(model, da.from_array(X, chunks=2))
    keys = [k for k in dict(P.__dask_graph__())
            if isinstance(k, str) and k.startswith("cnnext-model-")]
    assert len(keys) == 1
    # The same weights give the same key; other weights another.
    again = _dask.predict_proba_dask(model, da.from_array(X, chunks=2))
    assert keys[0] in dict(again.__dask_graph__())
    other = _dask.predict_proba_dask(small_model(seed=1), da.from_array(X, chunks=2))
    assert keys[0] not in dict(other.__dask_graph__())


def test_blocks_run_private_copies_of_the_model():
    # The threaded scheduler runs blocks of one model at once; the layers'
    # caches must not be shared, and the caller's model is left as it was.
    model = small_model(np.float64)
    X, _ = small_data(64)
    P = _dask.predict_proba_dask(model, da.from_array(X, chunks=1), batch_size=1)
    np.testing.assert_allclose(P.compute(scheduler="threads", num_workers=4),
                               model.predict_proba(X), rtol=1e-12)
    fresh = small_model(np.float64)
    _dask.predict_proba_dask(fresh, da.from_array(X, chunks=8)).compute(scheduler="sync")
    assert all(layer.cache is None for layer in fresh.layers)


def test_an_unbuilt_model_is_built_for_the_examples():
    model = nn.Sequential([nn.Flatten(), nn.Dense(2)], dtype="float64")
    X = np.arange(12.0).reshape(3, 2, 2, 1)
    P = _dask.predict_proba_dask(model, da.from_array(X, chunks=2))
    assert model.input_shape == (2, 2, 1)
    np.testing.assert_allclose(P.compute(scheduler="sync"), model.predict_proba(X))


def test_predict_proba_dask_errors_name_the_argument():
    model = small_model()
    X, _ = small_data(4)
    with pytest.raises(TypeError, match=r"X must be a dask array; got ndarray"):
        _dask.predict_proba_dask(model, X)
    with pytest.raises(ValueError, match=r"expects examples of shape \(8, 8, 1\); "
                                         r"X has shape \(4, 8, 4, 1\)"):
        _dask.predict_proba_dask(model, da.zeros((4, 8, 4, 1)))
    with pytest.raises(ValueError, match=r"X must be a batch of shape \(m, \.\.\.\); "
                                         r"got shape \(4,\)"):
        _dask.predict_proba_dask(model, da.zeros(4))
    with pytest.raises(TypeError, match=r"X must hold real numbers; got dtype complex128"):
        _dask.predict_proba_dask(model, da.zeros((4, 8, 8, 1), dtype=complex))
    with pytest.raises(TypeError, match=r"batch_size must be an integer; got float 2.0"):
        _dask.predict_proba_dask(model, da.zeros((4, 8, 8, 1)), batch_size=2.0)
    with pytest.raises(ValueError, match=r"batch_size must be >= 1; got 0"):
        _dask.predict_proba_dask(model, da.zeros((4, 8, 8, 1)), batch_size=0)
    with pytest.raises(TypeError, match=r"model must be a cnnext.nn.Sequential; got str"):
        _dask.predict_proba_dask("model", da.zeros((4, 8, 8, 1)))


def test_is_dask_array():
    assert _dask.is_dask_array(da.zeros(3))
    assert not _dask.is_dask_array(np.zeros(3))
    assert not _dask.is_dask_array([0, 1])


# --------------------------------------------------------------------------
# The eight functions inside map_blocks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool_forward_inside_map_blocks(client, ref, assert_close, mode):
    X = np.random.default_rng(1).standard_normal((13, 6, 6, 3))
    hp = {"f": 2, "stride": 2}
    A = da.map_blocks(lambda b: cnnext.pool_forward(b, hp, mode=mode)[0],
                      da.from_array(X, chunks=(4, 6, 6, 3)),
                      chunks=((4, 4, 4, 1), (3,), (3,), (3,)), dtype=X.dtype,
                      meta=np.empty((0, 0, 0, 0), dtype=X.dtype))
    assert_close(A.compute(), ref.pool_forward(X, hp, mode=mode))


def test_conv_forward_and_backward_inside_map_blocks(client, ref, assert_close):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10, 5, 5, 2)).astype(np.float32)
    W = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    b = rng.standard_normal((1, 1, 1, 4)).astype(np.float32)
    hp = {"stride": 1, "pad": 1}
    Xd = da.from_array(X, chunks=(3, 5, 5, 2))
    meta = np.empty((0, 0, 0, 0), dtype=np.float32)
    Z = da.map_blocks(lambda blk: cnnext.conv_forward(blk, W, b, hp)[0], Xd,
                      chunks=(Xd.chunks[0], (5,), (5,), (4,)), dtype=np.float32, meta=meta)
    assert_close(Z.compute(), ref.conv_forward(X, W, b, hp), np.float32)
    # dA_prev of each block, for dZ = 1: the backward pass per block.
    dA = da.map_blocks(
        lambda blk: cnnext.conv_backward(np.ones((len(blk), 5, 5, 4), np.float32),
                                         cnnext.conv_forward(blk, W, b, hp)[1])[0],
        Xd, dtype=np.float32, meta=meta)
    expected = ref.conv_backward(np.ones((10, 5, 5, 4)), (X, W, b, hp))[0]
    assert_close(dA.compute(), expected, np.float32)


# --------------------------------------------------------------------------
# Thread cap
# --------------------------------------------------------------------------

def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _cap_property_holds(workers, caps, cpus):
    for host in {info["host"] for info in workers.values()}:
        on_host = [a for a, info in workers.items() if info["host"] == host]
        task_threads = sum(workers[a]["nthreads"] for a in on_host)
        used = sum(workers[a]["nthreads"] * caps[a] for a in on_host)
        # No oversubscription unless even one thread per task is too many.
        assert used <= max(min(cpus[a] for a in on_host), task_threads)


@pytest.mark.parametrize("layout, cpus", [
    ({"a": ("h", 1), "b": ("h", 1)}, 2),
    ({"a": ("h", 1)}, 2),
    ({"a": ("h", 2)}, 2),
    ({"a": ("h", 2), "b": ("h", 1)}, 8),
    ({"a": ("h", 3), "b": ("h", 3)}, 2),
    ({"a": ("h1", 1), "b": ("h2", 1), "c": ("h2", 1)}, 4),
])
def test_threads_per_task_never_oversubscribes_a_host(layout, cpus):
    workers = {a: {"host": h, "nthreads": n} for a, (h, n) in layout.items()}
    per_worker_cpus = {a: cpus for a in workers}
    caps = _dask.threads_per_task(workers, per_worker_cpus)
    assert set(caps) == set(workers)
    assert all(cap >= 1 for cap in caps.values())
    _cap_property_holds(workers, caps, per_worker_cpus)
    # As many threads as fit: one more per task would oversubscribe (or the
    # host has one thread per task already at its CPUs).
    for host in {h for h, _ in layout.values()}:
        on_host = [a for a in workers if workers[a]["host"] == host]
        task_threads = sum(workers[a]["nthreads"] for a in on_host)
        assert all((caps[a] + 1) * task_threads > cpus for a in on_host)


def test_threads_per_task_counts_tasks_per_worker_when_given():
    workers = {"a": {"host": "h", "nthreads": 4}, "b": {"host": "h", "nthreads": 4}}
    cpus = {"a": 8, "b": 8}
    assert _dask.threads_per_task(workers, cpus) == {"a": 1, "b": 1}
    # One task per worker at a time (the trainer's actors): 2 tasks share 8 CPUs.
    assert _dask.threads_per_task(workers, cpus, tasks_per_worker=1) == {"a": 4, "b": 4}


def test_cap_worker_threads_applies_the_cap_inside_workers(client):
    caps = _dask.cap_worker_threads(client)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    assert set(caps) == set(workers)
    cpus = client.run(available_cpus)
    _cap_property_holds(workers, caps, cpus)
    # Two single-threaded workers on this host share its CPUs.
    expected = max(1, available_cpus() // 2)
    assert set(caps.values()) == {expected}
    # Tasks see the cap: cnnext's own threads, and BLAS where threadpoolctl
    # is (held at one thread by default, at the cap with blas_threads=None).
    futures = [client.submit(cnnext.get_num_threads, workers=[a], pure=False)
               for a in sorted(workers)]
    assert client.gather(futures) == [expected, expected]
    if _has("threadpoolctl"):
        def blas_threads():
            import threadpoolctl
            return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                    if lib["user_api"] == "blas"]
        for counts in client.run(blas_threads).values():
            assert counts and set(counts) == {1}
        _dask.cap_worker_threads(client, blas_threads=None)
        for counts in client.run(blas_threads).values():
            assert set(counts) == {expected}
        _dask.cap_worker_threads(client)
    with pytest.raises(ValueError, match=r"blas_threads must be >= 1; got 0"):
        _dask.cap_worker_threads(client, blas_threads=0)


def test_predict_proba_dask_caps_the_default_client(client):
    client.run(cnnext.set_num_threads, 7)  # as if uncapped
    X, _ = small_data(4)
    threads_in_task = da.map_blocks(
        lambda b: np.full(len(b), cnnext.get_num_threads()), da.from_array(X, chunks=2),
        drop_axis=[1, 2, 3], dtype=int, meta=np.empty(0, dtype=int))
    _dask.predict_proba_dask(small_model(), da.from_array(X, chunks=2))  # caps
    assert set(threads_in_task.compute()) == {max(1, available_cpus() // 2)}


def test_workers_in_the_clients_process_are_left_alone():
    before = cnnext.get_num_threads()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        caps = _dask.cap_worker_threads(c)
    assert list(caps.values()) == [before]
    assert cnnext.get_num_threads() == before


# --------------------------------------------------------------------------
# Data-parallel training
# --------------------------------------------------------------------------

def one_process_training(model, X, y, optimizer, batch_size, epochs, seed,
                         transform=None, draw=None):
    """The plain loop of model.train_step that train_data_parallel must match."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            Xb = X[batch] if transform is None else transform(X[batch], *draw(rng, len(batch)))
            model.train_step(Xb, y[batch], optimizer)


def _augmentation():
    # Made inside a function, so that they travel to the workers by value:
    # the workers cannot import this file (pytest imports it by path).
    def flip_some(X, flips, scale):
        """Mirror the images whose flip is 1; scale each."""
        return (np.where(flips[:, None, None, None] == 1, X[:, :, ::-1], X)
                * scale[:, None, None, None])

    def draw_flips(rng, n):
        return rng.integers(0, 2, n), rng.uniform(0.5, 1.5, n)

    return flip_some, draw_flips


flip_some, draw_flips = _augmentation()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_optimizer", [lambda: nn.Adam(0.01),
                                            lambda: nn.SGD(0.1, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_two_workers_train_the_one_process_model(client, dtype, make_optimizer):
    X, y = small_data(40)
    # A batch of 13: uneven shards (6 + 7) and a last batch of 1 per epoch,
    # which leaves one worker without a shard.
    ref_model = small_model(dtype)
    one_process_training(ref_model, X, y, make_optimizer(), 13, 3, seed=5)
    model = small_model(dtype)
    history = _dask.train_data_parallel(model, X, y, make_optimizer(), client,
                                        batch_size=13, epochs=3, seed=5)
    for (name, got), (_, want) in zip(model.parameters(), ref_model.parameters()):
        assert got.dtype == dtype, name
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=TRAIN_RTOL[dtype],
                                   atol=TRAIN_RTOL[dtype] * scale, err_msg=name)
    assert len(history["loss"]) == len(history["accuracy"]) == 3


def test_augmentation_on_the_workers_matches_one_process(client):
    X, y = small_data(30)
    ref_model = small_model(np.float64)
    one_process_training(ref_model, X, y, nn.Adam(0.01), 11, 2, seed=1,
                         transform=flip_some, draw=draw_flips)
    model = small_model(np.float64)
    _dask.train_data_parallel(model, X, y, nn.Adam(0.01), client, batch_size=11,
                              epochs=2, seed=1, transform=flip_some, draw=draw_flips)
    plain = small_model(np.float64)
    one_process_training(plain, X, y, nn.Adam(0.01), 11, 2, seed=1)
    for (name, got), (_, want), (_, unaugmented) in zip(
            model.parameters(), ref_model.parameters(), plain.parameters()):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=name)
        assert not np.allclose(got, unaugmented), name  # the transform did run


def test_train_step_returns_the_batch_loss_and_accuracy(client):
    X, y = small_data(20)
    model, ref_model = small_model(), small_model()
    batch = np.arange(3, 17)
    logits = ref_model.forward(X[batch])
    want_loss = float(ref_model.loss.forward(logits, y[batch]))
    want_accuracy = float(np.mean(logits.argmax(axis=1) == y[batch]))
    with _dask.DataParallelTrainer(model, nn.SGD(0.1), client, X, y) as trainer:
        assert trainer.shard_workers == sorted(client.scheduler_info(n_workers=-1)["workers"])
        loss, accuracy = trainer.train_step(batch)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert accuracy == pytest.approx(want_accuracy)


def test_data_parallel_training_is_deterministic_for_a_seed(client):
    X, y = small_data(30)
    runs = []
    for _ in range(2):
        model = small_model(np.float32)
        history = _dask.train_data_parallel(model, X, y, nn.Adam(0.01), client,
                                            batch_size=8, epochs=2, seed=3)
        runs.append(([p.copy() for _, p in model.parameters()], history))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def test_lr_schedule_and_on_epoch(client):
    X, y = small_data(16)
    seen, lrs = [], []
    optimizer = nn.SGD(0.1)

    def schedule(epoch):
        return 0.1 / epoch

    def on_epoch(epoch, loss, accuracy):
        seen.append((epoch, loss, accuracy))
        lrs.append(optimizer.lr)

    history = _dask.train_data_parallel(small_model(), X, y, optimizer, client,
                                        batch_size=8, epochs=3, lr_schedule=schedule,
                                        on_epoch=on_epoch)
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert [loss for _, loss, _ in seen] == history["loss"]
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_training_errors_name_the_argument(client):
    X, y = small_data(6)
    model = small_model()
    with pytest.raises(TypeError, match=r"client must be a distributed.Client; got str"):
        _dask.DataParallelTrainer(model, nn.SGD(), "tcp://nowhere", X, y)
    with pytest.raises(TypeError, match=r"optimizer must have a step\(model\) method"):
        _dask.DataParallelTrainer(model, "adam", client, X, y)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\), one label per "
                                         r"example of X; got \(5,\)"):
        _dask.DataParallelTrainer(model, nn.SGD(), client, X, y[:5])
    with pytest.raises(ValueError, match=r"labels must be in 0..2; got values from 0 to 3"):
        _dask.DataParallelTrainer(model, nn.SGD(), client, X, np.array([0, 1, 2, 3, 0, 1]))
    with pytest.raises(TypeError, match=r"y must hold integer class labels; got dtype float64"):
        _dask.DataParallelTrainer(model, nn.SGD(), client, X, y.astype(float))
    with pytest.raises(ValueError, match=r"expects examples of shape \(8, 8, 1\); "
                                         r"X has shape \(6, 4, 4, 1\)"):
        _dask.DataParallelTrainer(model, nn.SGD(), client, np.zeros((6, 4, 4, 1)), y)
    with pytest.raises(ValueError, match=r"with m >= 1; got shape \(0, 8, 8, 1\)"):
        _dask.DataParallelTrainer(model, nn.SGD(), client, X[:0], y[:0])
    with _dask.DataParallelTrainer(model, nn.SGD(), client, X, y) as trainer:
        with pytest.raises(ValueError, match=r"batch indices must be in 0..5; got "
                                             r"values from 0 to 6"):
            trainer.train_step([0, 6])
        with pytest.raises(ValueError, match=r"at least one example index; got none"):
            trainer.train_step(np.array([], dtype=int))
        with pytest.raises(TypeError, match=r"batch must be a 1-D array of example "
                                            r"indices; got 1-D dtype float64"):
            trainer.train_step([0.0, 1.0])
        with pytest.raises(ValueError, match=r"per_example\[0\] must have one row per "
                                             r"example of the batch, 2; got shape \(3,\)"):
            trainer.train_step([0, 1], flip_some, [np.zeros(3)])
        with pytest.raises(TypeError, match=r"transform must be callable; got str"):
            trainer.train_step([0, 1], "flip")
    with pytest.raises(RuntimeError, match=r"the trainer is closed"):
        trainer.train_step([0, 1])
    with pytest.raises(ValueError, match=r"batch_size must be >= 1; got 0"):
        _dask.train_data_parallel(model, X, y, nn.SGD(), client, batch_size=0)
    with pytest.raises(ValueError, match=r"draw needs a transform"):
        _dask.train_data_parallel(model, X, y, nn.SGD(), client, draw=draw_flips)


def test_divergence_raises(client):
    X, y = small_data(8)
    X = X * 1e30
    with pytest.raises(FloatingPointError, match=r"training diverged at epoch 1"):
        with np.errstate(all="ignore"):
            _dask.train_data_parallel(small_model(np.float32), X, y, nn.SGD(10.0),
                                      client, batch_size=4, epochs=3)


# --------------------------------------------------------------------------
# The module itself
# --------------------------------------------------------------------------

def test_docstring_examples_run():
    failures, tried = doctest.testmod(_dask, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0


def test_cnnext_imports_without_dask(tmp_path):
    code = ("import sys; import cnnext, cnnext.nn, cnnext._dask; "
            "print([m for m in ('dask', 'distributed') if m in sys.modules])")
    # Run outside the checkout, so that the installed package is imported.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env=dict(os.environ))
    assert out.stdout.strip() == "[]"
