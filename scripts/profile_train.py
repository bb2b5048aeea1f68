"""Where a training step of the main job spends its time.

    python scripts/profile_train.py [THREADS]   (cnnext's threads; default 1)

Trains the default digits model (as ``cnnext train``) for 5 epochs with
wall-clock timers around the compiled kernel entry points (``cnnext._conv`` /
``cnnext._pool``) and around the public functions that validate and call
them; prints the share of the step time in each. The rest is the layer API,
the optimizer, the loss and numpy glue (Dense's matmul included).
"""
import sys
import time

import numpy as np

import cnnext
from cnnext import _conv, _pool, nn
from cnnext.cli import data, models


def main(threads=1):
    # As `cnnext train` does by default: BLAS on one thread (the model's GEMMs
    # are too small to share), cnnext's own kernels on `threads`.
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")
    cnnext.set_num_threads(threads)
    train, _ = data.digits(0)
    model = models.course_model((8, 8, 1), 10, "float32", 0)
    opt = nn.Adam(0.003)
    rng = np.random.default_rng(0)

    def epochs(n):
        for _ in range(n):
            order = rng.permutation(len(train.y))
            for i in range(0, len(order), 32):
                batch = order[i:i + 32]
                model.train_step(train.X[batch], train.y[batch], opt)

    epochs(1)  # warm up
    spent = {}

    class Timed:
        """Times calls of ``real``; indexing it (a fused Cython kernel's
        float/double version, as cnnext's wrappers pick them) times those."""

        def __init__(self, real, key):
            self.real, self.key = real, key

        def __call__(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return self.real(*args, **kwargs)
            finally:
                spent[self.key] = spent.get(self.key, 0.0) + time.perf_counter() - start

        def __getitem__(self, signature):
            return Timed(self.real[signature], self.key)

    def timed(module, name, key):
        setattr(module, name, Timed(getattr(module, name), key))

    names = ["conv_forward", "conv_backward", "pool_forward", "pool_backward"]
    for name in names:
        timed(_conv if name.startswith("conv") else _pool, name, "kernel " + name)
        timed(cnnext, name, "public " + name)
    start = time.perf_counter()
    epochs(5)
    total = time.perf_counter() - start
    steps = 5 * -(-len(train.y) // 32)
    kernels = sum(v for k, v in spent.items() if k.startswith("kernel"))
    public = sum(v for k, v in spent.items() if k.startswith("public"))
    print(f"threads {threads}: {steps} steps in {total:.3f} s = "
          f"{1e3 * total / steps:.2f} ms/step")
    for name in names:
        print(f"  {name:14s} kernel {spent['kernel ' + name] / total:6.1%}   "
              f"with validation {spent['public ' + name] / total:6.1%}")
    print(f"  compiled kernels {kernels / total:.1%}; with the validating "
          f"wrappers {public / total:.1%}; layer API, optimizer, loss and numpy "
          f"glue {1 - public / total:.1%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
