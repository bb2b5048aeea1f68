"""cnnext on Dask: inference over dask arrays, data-parallel training on a
cluster, and the thread cap of the workers.

Dask and distributed are imported inside the functions that need them, so
that cnnext still imports with numpy only (``pip install "cnnext[dask]"``
brings them).

Inference (:func:`predict_proba_dask`, :func:`predict_dask`) maps the model
over the blocks of a dask array chunked along the batch axis. The model goes
into the graph once, as one key that every block depends on (each worker
fetches it once), and each block runs a private copy of the layers, so that
the threads of one worker never share a layer's cache.

Training (:class:`DataParallelTrainer`, :func:`train_data_parallel`) keeps
the model and optimizer on the client. Each step cuts the global batch into
one contiguous shard per worker, in a fixed order; each worker
computes its shard's gradients with the current weights, weighted by
``len(shard) / len(batch)`` so that they add up to the gradient of the
global batch's mean loss; the client sums them in shard order, steps the
optimizer once and sends the new weights with the next step. With the same
seed and global batch, any number of workers gives the model one process
gives, to float rounding.

The eight functions need no wrapper to run on blocks: pass them to
``dask.array.map_blocks`` with explicit ``chunks``, ``dtype`` and ``meta``,
e.g. ``da.map_blocks(lambda b: cnnext.pool_forward(b, hp)[0], X, chunks=...,
dtype=X.dtype, meta=np.empty((0, 0, 0, 0), X.dtype))``.
"""
import copy
import numbers
import os
import sys

import numpy as np

from ._threads import available_cpus, get_num_threads, limit_all_threads

__all__ = [
    "is_dask_array",
    "predict_proba_dask",
    "predict_dask",
    "cap_worker_threads",
    "threads_per_task",
    "DataParallelTrainer",
    "train_data_parallel",
]

_INSTALL_HINT = 'install them with: pip install "cnnext[dask]"'


def _import(module):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ImportError(f"cnnext's Dask support needs {module.split('.')[0]} "
                          f"({exc}); {_INSTALL_HINT}") from None


def _check_positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return int(value)


def _check_model(model):
    # Duck-typed on the Sequential API this module uses, so that it keeps
    # working with any class that offers it.
    needed = ("layers", "parameters", "forward", "backward", "loss", "build")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model must be a cnnext.nn.Sequential; got "
                        f"{type(model).__name__} (no {', '.join(missing)})")


def _check_client(client):
    distributed = _import("distributed")
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client; got "
                        f"{type(client).__name__}")
    if client.asynchronous:
        raise ValueError("client must be a synchronous distributed.Client; got "
                         "one created with asynchronous=True")
    return client


def is_dask_array(X):
    """Whether ``X`` is a dask array (without importing dask if nothing has).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import _dask
    >>> _dask.is_dask_array(np.zeros(3))
    False
    """
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


# --------------------------------------------------------------------------
# The model as shipped to workers
# --------------------------------------------------------------------------

def _stateless_copy(model, weights=None):
    """A copy of ``model`` that holds none of its per-call state.

    Layers, loss and model are shallow copies with no cache and no
    gradients, so the copy pickles to little more than its weights, and a
    thread can run forward and backward on it while other threads run
    their own copies. The weights are ``model``'s own arrays (not copied),
    or, given ``weights`` in :meth:`parameters` order, those arrays. The
    buffers (BatchNorm2D's running statistics, which a training forward
    updates in place) are copies, so a copy never writes into ``model``.
    """
    clone = copy.copy(model)
    clone.loss = type(model.loss)()
    clone.layers = []
    new_weights = iter(weights) if weights is not None else None
    for layer in model.layers:
        new = copy.copy(layer)
        new.cache = None
        new.grads = {}
        new.buffers = {name: value.copy() for name, value in layer.buffers.items()}
        if new_weights is None:
            new.params = dict(layer.params)
        else:
            new.params = {name: next(new_weights) for name in layer.params}
        clone.layers.append(new)
    return clone


def _weights(model):
    return [value for _, value in model.parameters()]


# --------------------------------------------------------------------------
# Thread cap
# --------------------------------------------------------------------------

def threads_per_task(workers, cpus, tasks_per_worker=None):
    """The cnnext threads each task may use, per worker, so that on every host
    (tasks running at once on its workers) x (threads per task) <= its CPUs.

    Parameters
    ----------
    workers : dict of str to dict
        Per worker address, ``{"host": str, "nthreads": int}`` (as in
        ``client.scheduler_info()["workers"]``).
    cpus : dict of str to int
        Per worker address, the CPUs it may run on.
    tasks_per_worker : int, optional
        How many tasks each worker runs at once; default its ``nthreads``.

    Returns
    -------
    dict of str to int
        Per worker address, ``max(1, cpus // tasks at once on its host)``.

    Examples
    --------
    >>> from cnnext._dask import threads_per_task
    >>> workers = {"a": {"host": "h", "nthreads": 1}, "b": {"host": "h", "nthreads": 1}}
    >>> threads_per_task(workers, {"a": 4, "b": 4})
    {'a': 2, 'b': 2}
    """
    on_host = {}
    for info in workers.values():
        tasks = int(info["nthreads"]) if tasks_per_worker is None else tasks_per_worker
        on_host[info["host"]] = on_host.get(info["host"], 0) + tasks
    return {address: max(1, int(cpus[address]) // max(1, on_host[info["host"]]))
            for address, info in workers.items()}


_worker_limits = None  # the limits this worker process runs under, if capped


def _cap_this_process(num_threads, blas_threads):
    """Limit cnnext, BLAS and OpenMP threads of this (worker) process to
    ``num_threads``, BLAS further to ``blas_threads`` unless None; return
    cnnext's thread count. Runs on a worker through ``client.run``."""
    global _worker_limits
    if _worker_limits is not None:
        _worker_limits.restore()
    _worker_limits = limit_all_threads(num_threads)
    if blas_threads is not None:
        _worker_limits.add(limit_all_threads(min(blas_threads, num_threads),
                                             blas_only=True).restore)
    return get_num_threads()


def _process_facts():
    """The CPUs this process may run on, and its id; runs on each worker."""
    return available_cpus(), os.getpid()


def cap_worker_threads(client, tasks_per_worker=None, blas_threads=1):
    """Cap the threads of every worker of ``client`` so that the cores of no
    host are oversubscribed.

    A worker runs ``nthreads`` tasks at once, and each cnnext call in a task
    may start its own threads: on every host, (task threads of its workers)
    x (cnnext threads) must not exceed its CPUs. Each worker process gets
    ``max(1, its CPUs // task threads on its host)`` threads for cnnext's
    kernels, BLAS and OpenMP (:func:`cnnext._threads.limit_all_threads`),
    BLAS held at one thread by default, as ``cnnext train`` runs it, until
    the next call. Workers that join later are capped by the next
    call; :func:`predict_proba_dask` and :class:`DataParallelTrainer` make
    one. Workers inside the client's own process (``processes=False``) are
    left alone: that process's threads are its owner's to set.

    Parameters
    ----------
    client : distributed.Client
    tasks_per_worker : int, optional
        How many cnnext tasks each worker runs at once: default its
        ``nthreads``; 1 for :class:`DataParallelTrainer`, whose one actor
        per worker computes one shard at a time.
    blas_threads : int or None, default 1
        BLAS threads of each worker, at most its cap; None: the cap. The
        GEMMs of cnnext's layers are small, and multi-threaded BLAS spends
        more time synchronising than computing them: a worker's training
        step of the MNIST model took 33-76 ms with 2 BLAS threads and
        22-30 ms with 1 here.

    Returns
    -------
    dict of str to int
        The cnnext threads of each worker, by address.
    """
    _check_client(client)
    if blas_threads is not None:
        blas_threads = _check_positive_int(blas_threads, "blas_threads")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        return {}
    facts = client.run(_process_facts)
    caps = threads_per_task(workers, {address: cpus for address, (cpus, _) in facts.items()},
                            tasks_per_worker)
    here = os.getpid()
    for address, (_, pid) in facts.items():
        if pid == here:
            caps[address] = get_num_threads()
    for n in sorted(set(caps.values())):
        others = [address for address, cap in caps.items()
                  if cap == n and facts[address][1] != here]
        if others:
            client.run(_cap_this_process, n, blas_threads, workers=others)
    return caps


def _cap_default_client(client):
    """Cap the workers of ``client``, or of the current distributed client if
    there is one; with neither, Dask runs in this process and nothing is capped."""
    if client is None:
        if "distributed" not in sys.modules:
            return
        try:
            client = sys.modules["distributed"].default_client()
        except ValueError:  # no client
            return
        if client.asynchronous:
            return
    cap_worker_threads(client)


# --------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------

def _predict_proba_block(block, model, batch_size):
    # A private copy: the worker's other threads may run the same model.
    return _stateless_copy(model).predict_proba(block, batch_size)


def predict_proba_dask(model, X, batch_size=256, client=None):
    """Class probabilities of a dask array of examples, as a dask array.

    ``X`` is rechunked to one chunk on every axis but the batch axis; each
    block is predicted by :meth:`Sequential.predict_proba` in batches of
    ``batch_size``. The output's chunks, dtype and meta are given, so Dask
    never runs the model on made-up data. The model enters the graph once
    (weights included) and is fetched once by each worker.

    Parameters
    ----------
    model : cnnext.nn.Sequential
        Built, or built here for ``X.shape[1:]`` (as ``predict_proba`` does).
    X : dask.array.Array, shape (m, ...)
        Examples along axis 0, in any chunks.
    batch_size : int, default 256
        Examples per forward pass inside a block.
    client : distributed.Client, optional
        Its workers' threads are capped (:func:`cap_worker_threads`) when
        the graph is built; default: the current client, if any.

    Returns
    -------
    P : dask.array.Array, shape (m, n_classes), the model's dtype
        Chunked like ``X`` along axis 0.

    Raises
    ------
    TypeError
        If X is not a dask array of real numbers, or batch_size not an integer.
    ValueError
        If X's examples do not have the model's input shape.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from cnnext import nn
    >>> from cnnext._dask import predict_proba_dask
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1))
    >>> X = da.ones((10, 2, 2, 1), chunks=(4, 2, 2, 1))
    >>> P = predict_proba_dask(model, X)
    >>> P.chunks, P.dtype
    (((4, 4, 2), (3,)), dtype('float32'))
    >>> np.allclose(P.compute(scheduler="sync"), model.predict_proba(X.compute()))
    True
    """
    da = _import("dask.array")
    dask = _import("dask")
    _check_model(model)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask array; got {type(X).__name__} (use "
                        f"model.predict_proba for numpy arrays)")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers; got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"X must be a batch of shape (m, ...); got shape {X.shape}")
    if not model.built:
        model.build(X.shape[1:])
    if tuple(X.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"the model expects examples of shape {tuple(model.input_shape)}; "
                         f"X has shape {X.shape}")
    _cap_default_client(client)

    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    out_shape = tuple(model.output_shape)
    out_ndim = 1 + len(out_shape)
    shipped = _stateless_copy(model)
    token = dask.base.tokenize(model.get_config(), *_weights(model))
    # A delayed object is one key of the graph: each worker fetches it once,
    # instead of every task carrying its own pickled copy.
    shipped = dask.delayed(shipped, name=f"cnnext-model-{token}", traverse=False)
    return da.map_blocks(
        _predict_proba_block, X, shipped, batch_size,
        chunks=(X.chunks[0],) + tuple((n,) for n in out_shape),
        drop_axis=list(range(out_ndim, X.ndim)),
        new_axis=list(range(X.ndim, out_ndim)) or None,
        dtype=model.dtype, meta=np.empty((0,) * out_ndim, dtype=model.dtype),
        token="cnnext-predict-proba")


def predict_dask(model, X, batch_size=256, client=None):
    """Predicted class of each example of a dask array, as a dask array.

    The argmax of :func:`predict_proba_dask` (same parameters).

    Returns
    -------
    labels : dask.array.Array of int, shape (m,)

    Examples
    --------
    >>> import dask.array as da
    >>> from cnnext import nn
    >>> from cnnext._dask import predict_dask
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1))
    >>> X = da.ones((10, 2, 2, 1), chunks=(4, 2, 2, 1))
    >>> bool((predict_dask(model, X).compute() == model.predict(X.compute())).all())
    True
    """
    return predict_proba_dask(model, X, batch_size, client).argmax(axis=1)


# --------------------------------------------------------------------------
# Data-parallel training
# --------------------------------------------------------------------------

def _shard_step(model, weights, X, y, shard, batch_len, transform, per_example):
    """On a worker: the loss sum, correct count and gradients of ``shard``,
    weighted to be its share of the global batch's gradient."""
    model = _stateless_copy(model, weights)
    yb = y[shard]
    Xb = X[shard] if transform is None else transform(X[shard], *per_example)
    logits = model._training_forward(Xb)
    loss = model.loss.forward(logits, yb)
    # The loss is the shard's mean; scaled by len(shard)/len(batch), the
    # shards' gradients add up to that of the global batch's mean.
    model.backward(model.loss.backward() * (len(shard) / batch_len))
    grads = [layer.grads[name] for layer in model.layers for name in layer.params]
    return float(loss) * len(shard), int((logits.argmax(axis=1) == yb).sum()), grads


def _check_data(model, X, y):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers; got dtype {X.dtype}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a batch of shape (m, ...) with m >= 1; got "
                         f"shape {X.shape}")
    if not model.built:
        model.build(X.shape[1:])
    if X.shape[1:] != tuple(model.input_shape):
        raise ValueError(f"the model expects examples of shape {tuple(model.input_shape)}; "
                         f"X has shape {X.shape}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one label per example "
                         f"of X; got {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
    n_classes = int(np.prod(model.output_shape))
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}; got values from "
                         f"{y.min()} to {y.max()}")
    return np.ascontiguousarray(X, dtype=model.dtype), y


class _ShardWorker:
    """The actor on each worker: holds the training data and the model's
    layers, and computes the gradients of one shard per call.

    An actor is called by the client directly, not through the scheduler:
    a step costs one message each way per worker, a few milliseconds less
    than a task and a scatter (measured: 7 against 30 ms per step here).
    """

    def __init__(self, model, X, y):
        self.model, self.X, self.y = model, X, y

    def step(self, weights, shard, batch_len, transform, per_example):
        return _shard_step(self.model, weights, self.X, self.y, shard, batch_len,
                           transform, per_example)


class DataParallelTrainer:
    """Train a model on the workers of a Dask cluster, one global batch at a
    time, to the same weights as one process.

    The training data go to every worker once, when the trainer is made,
    into an actor per worker; each :meth:`train_step` then sends each actor
    the current weights and its shard of batch indices, and receives the
    shard's gradients. The model and the optimizer stay on the client and
    are updated in place, as by ``model.train_step``. Each worker computes
    one shard at a time, with all the threads its share of the host's CPUs
    allows (:func:`cap_worker_threads` with ``tasks_per_worker=1``).

    Parameters
    ----------
    model : cnnext.nn.Sequential
        Built, or built here for ``X.shape[1:]``.
    optimizer : cnnext.nn.SGD or cnnext.nn.Adam
        Anything with ``step(model)`` that reads ``model.parameters()`` and
        ``model.gradients()``.
    client : distributed.Client
    X : array_like, shape (m, ...)
        The training examples (converted to the model's dtype).
    y : array_like of int, shape (m,)
        Their class labels.

    Attributes
    ----------
    shard_workers : list of str
        The worker of each shard, in shard order (sorted addresses).
    threads : dict of str to int
        cnnext threads of each worker, from :func:`cap_worker_threads`.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from cnnext import nn
    >>> from cnnext._dask import DataParallelTrainer
    >>> X = np.random.default_rng(0).random((8, 4, 4, 1)); y = np.arange(8) % 2
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(4, 4, 1))
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \\
    ...         Client(cluster) as client, \\
    ...         DataParallelTrainer(model, nn.SGD(0.1), client, X, y) as trainer:
    ...     loss, accuracy = trainer.train_step(np.arange(8))
    >>> 0 <= accuracy <= 1
    True
    """

    def __init__(self, model, optimizer, client, X, y):
        _check_model(model)
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"optimizer must have a step(model) method, like "
                            f"cnnext.nn.Adam; got {type(optimizer).__name__}")
        self.client = _check_client(client)
        X, y = _check_data(model, X, y)
        self.model, self.optimizer = model, optimizer
        self.n_examples = X.shape[0]
        self.threads = cap_worker_threads(client, tasks_per_worker=1)
        self.shard_workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if not self.shard_workers:
            raise ValueError("the client's cluster has no workers")
        # hash=False: new keys, never merged with another trainer's
        # equal-looking arrays.
        data = client.scatter([_stateless_copy(model), X, y], broadcast=True, hash=False)
        self._actors = [client.submit(_ShardWorker, *data, workers=[address],
                                      actor=True, pure=False)
                        for address in self.shard_workers]
        self._shards = [future.result() for future in self._actors]

    def _check_batch(self, batch):
        batch = np.asarray(batch)
        if batch.ndim != 1 or batch.dtype.kind not in "iu":
            raise TypeError(f"batch must be a 1-D array of example indices; got "
                            f"{batch.ndim}-D dtype {batch.dtype}")
        if batch.size == 0:
            raise ValueError("batch must hold at least one example index; got none")
        if batch.min() < 0 or batch.max() >= self.n_examples:
            raise ValueError(f"batch indices must be in 0..{self.n_examples - 1}; got "
                             f"values from {batch.min()} to {batch.max()}")
        return batch

    def train_step(self, batch, transform=None, per_example=()):
        """One optimizer step on the examples ``X[batch]``.

        Parameters
        ----------
        batch : array_like of int, shape (M,)
            Indices into the trainer's X and y: the global batch.
        transform : callable, optional
            ``transform(X_shard, *per_example_shards)`` gives the examples a
            shard trains on (data augmentation), run on the worker.
        per_example : sequence of array_like, each of M rows
            Arguments of ``transform``, one row per example of the batch
            (e.g. random shifts drawn on the client), cut into the same
            shards as ``batch``: the result does not depend on the number
            of workers.

        Returns
        -------
        loss : float
            Mean cross-entropy of the batch before the update.
        accuracy : float
            Fraction of the batch classified right before the update.
        """
        if not self._shards:
            raise RuntimeError("the trainer is closed; make a new DataParallelTrainer")
        batch = self._check_batch(batch)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable; got {type(transform).__name__}")
        per_example = [np.asarray(arg) for arg in per_example]
        for i, arg in enumerate(per_example):
            if arg.ndim == 0 or len(arg) != len(batch):
                raise ValueError(f"per_example[{i}] must have one row per example of "
                                 f"the batch, {len(batch)}; got shape {arg.shape}")
        weights = _weights(self.model)
        # Contiguous shards in a fixed order; a batch smaller than the
        # number of shards leaves some empty, and those are skipped.
        k = len(self._shards)
        bounds = [len(batch) * j // k for j in range(k + 1)]
        calls = [shard.step(weights, batch[lo:hi], len(batch), transform,
                            [arg[lo:hi] for arg in per_example])
                 for lo, hi, shard in zip(bounds[:-1], bounds[1:], self._shards)
                 if hi > lo]
        results = [call.result() for call in calls]  # in shard order
        loss_sum, n_correct, total = results[0]
        for shard_loss, shard_correct, grads in results[1:]:
            loss_sum += shard_loss
            n_correct += shard_correct
            total = [t + g for t, g in zip(total, grads)]
        total = iter(total)
        for layer in self.model.layers:
            for name in layer.params:
                layer.grads[name] = next(total)
        self.optimizer.step(self.model)
        return loss_sum / len(batch), n_correct / len(batch)

    def close(self):
        """Release the actors, and with them the data and the model they hold."""
        self._shards = []
        for future in self._actors:
            future.release()
        self._actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def train_data_parallel(model, X, y, optimizer, client, batch_size=32, epochs=1,
                        seed=0, lr_schedule=None, on_epoch=None, transform=None,
                        draw=None):
    """Train ``model`` on (X, y) data-parallel over the workers of ``client``.

    Each epoch draws a permutation of the examples from
    ``numpy.random.default_rng(seed)`` (one generator for all epochs) and
    steps once per ``batch_size`` examples of it, the last batch holding
    the rest: the loop of ``model.train_step`` in one process, which it
    matches to float rounding (see :class:`DataParallelTrainer`). With
    ``transform``, a batch trains on ``transform(X[batch], *draw(rng,
    len(batch)))``, drawn after the epoch's permutation.

    Parameters
    ----------
    model : cnnext.nn.Sequential
        Updated in place.
    X : array_like, shape (m, ...)
    y : array_like of int, shape (m,)
    optimizer : cnnext.nn.SGD or cnnext.nn.Adam
    client : distributed.Client
    batch_size : int, default 32
        The global batch, cut over all worker threads.
    epochs : int, default 1
    seed : int or numpy.random.Generator, default 0
        Source of the permutations.
    lr_schedule : callable, optional
        ``lr_schedule(epoch)`` (epoch from 1) gives ``optimizer.lr`` for
        that epoch.
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, loss, accuracy)`` after each epoch, with
        the epoch's mean training loss and accuracy.
    transform : callable, optional
        Data augmentation, run on the workers: see
        :meth:`DataParallelTrainer.train_step`.
    draw : callable, optional
        ``draw(rng, n)`` gives the tuple of per-example arguments of
        ``transform`` for a batch of n, drawn on the client from the
        permutations' generator. Needs ``transform``.

    Returns
    -------
    history : dict
        ``{"loss": [...], "accuracy": [...]}``, one entry per epoch.

    Raises
    ------
    FloatingPointError
        If the loss becomes infinite or NaN (try a smaller learning rate).

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from cnnext import nn
    >>> from cnnext._dask import train_data_parallel
    >>> X = np.random.default_rng(0).random((16, 4, 4, 1)); y = np.arange(16) % 2
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(4, 4, 1))
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \\
    ...         Client(cluster) as client:
    ...     history = train_data_parallel(model, X, y, nn.Adam(0.01), client,
    ...                                   batch_size=8, epochs=2)
    >>> len(history["loss"])
    2
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    epochs = _check_positive_int(epochs, "epochs")
    if draw is not None and transform is None:
        raise ValueError("draw needs a transform to give its arguments to")
    rng = np.random.default_rng(seed)
    history = {"loss": [], "accuracy": []}
    with DataParallelTrainer(model, optimizer, client, X, y) as trainer:
        m = trainer.n_examples
        for epoch in range(1, epochs + 1):
            if lr_schedule is not None:
                optimizer.lr = lr_schedule(epoch)
            order = rng.permutation(m)
            loss_sum = correct = 0.0
            for start in range(0, m, batch_size):
                batch = order[start:start + batch_size]
                per_example = draw(rng, len(batch)) if draw is not None else ()
                loss, accuracy = trainer.train_step(batch, transform, per_example)
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch} (loss {loss}); try a "
                        f"smaller learning rate (now {optimizer.lr:g})")
                loss_sum += loss * len(batch)
                correct += accuracy * len(batch)
            history["loss"].append(loss_sum / m)
            history["accuracy"].append(correct / m)
            if on_epoch is not None:
                on_epoch(epoch, history["loss"][-1], history["accuracy"][-1])
    return history
