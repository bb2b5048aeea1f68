"""The two commands: ``cnnext train`` and ``cnnext predict``."""
from contextlib import contextmanager
from functools import partial
import os
import time

import numpy as np

from .. import nn
from .._version import __version__
from .augment import draw_shifts, shift_images
from .cluster import dask_client, describe as cluster_text
from .data import DEFAULT_DATA, NAMED, check_zip, class_count, load_file, train_test
from .errors import CLIError, require
from .models import FILE_RECIPE, RECIPES, describe
from .outputs import check_output, plot_target, save_errors, save_plot
from .progress import Progress

# --epochs and --batch-size default to the data set's recipe (models.RECIPES).
DEFAULTS = {"seed": 0, "lr": {"adam": 0.003, "sgd": 0.05}}


# Training has diverged once the cross-entropy of a batch passes DIVERGED x
# log(K). log(K) is the loss of guessing (a uniform softmax); training starts
# near it (3.3 = 1.4 log 10 on the digits) and lowers it. A loss of 100 log(K)
# gives the right class a mean probability of K**-100: the weights have blown
# up. Measured on the digits (5 epochs, learning rates 0.003 to 100 for each
# optimizer): no run that learned went above 3.5; runs at too large a rate
# peaked at 5 (adam 0.05) to 4e8 (adam 100), and sgd at lr 1000 finished
# "successfully" with an epoch loss of 4e3.
DIVERGED = 100


def _cosine_lr(lr, epoch, n_epochs):
    """Learning rate of epoch 1..n_epochs: cosine decay from lr to lr/100."""
    t = (epoch - 1) / max(n_epochs - 1, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t)))


def _n_correct(accuracy, n):
    """How many of the ``n`` images of a batch ``Sequential.train_step`` got
    right, from the batch's accuracy it returns (a fraction in [0, 1])."""
    return int(round(accuracy * n))


def recipe_of(data):
    """The :class:`~cnnext.cli.models.Recipe` of ``--data`` (None: the default)."""
    return RECIPES.get(DEFAULT_DATA if data is None else data, FILE_RECIPE)


@contextmanager
def _stepper(dask, model, optimizer, X, y):
    """Yield ``(step, where)``: ``step(batch, transform, per_example)`` is one
    optimizer step on ``X[batch]`` (as ``transform(X[batch], *per_example)``
    if given), in this process or data-parallel on the ``--dask`` cluster,
    returning (loss, accuracy); ``where`` describes the cluster (None here)."""
    if not dask:
        def step(batch, transform, per_example):
            Xb = X[batch] if transform is None else transform(X[batch], *per_example)
            return model.train_step(Xb, y[batch], optimizer)
        yield step, None
        return
    from .._dask import DataParallelTrainer
    with dask_client(dask) as client, \
            DataParallelTrainer(model, optimizer, client, X, y) as trainer:
        yield trainer.train_step, cluster_text(dask, client)


def train(args):
    """``cnnext train``: train the data set's ConvNet; returns the exit status 0."""
    t_start = args.t_start
    inputs = [("--data", args.data), ("--test", args.test)]
    if args.save:
        check_output(args.save, "--save", inputs)
    plot, plot_format = plot_target(args.plot) if args.plot else (None, None)
    if plot:
        check_output(plot, "--plot", inputs + [("--save", args.save)])
    if args.dask:
        require("distributed", "--dask", extra="dask")
    lr = args.lr if args.lr is not None else DEFAULTS["lr"][args.optimizer]
    recipe = recipe_of(args.data)
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    shift = recipe.max_shift
    transform = partial(shift_images, max_shift=shift) if shift else None

    rng = np.random.default_rng(args.seed)
    train_data, test_data = train_test(args, rng)
    n_classes, classes = class_count(train_data, test_data)
    try:
        model = recipe.model(train_data.X.shape[1:], n_classes, args.dtype, args.seed)
    except ValueError as exc:
        raise CLIError(f"{train_data.source}: images of shape {train_data.X.shape[1:]} do not "
                       f"fit the model: {exc}") from None
    model.meta = {"classes": classes or [str(c) for c in range(n_classes)],
                  "data": train_data.source, "seed": args.seed}
    optimizer = nn.Adam(lr) if args.optimizer == "adam" else nn.SGD(lr, momentum=0.9)
    X = train_data.X.astype(model.dtype, copy=False)
    Xt = test_data.X.astype(model.dtype, copy=False)

    with _stepper(args.dask, model, optimizer, X, train_data.y) as (step, where):
        print(f"cnnext {__version__}: training on {train_data.source}: {len(train_data)} train / "
              f"{len(test_data)} test images of shape {train_data.X.shape[1:]}, {n_classes} "
              f"classes; {args.optimizer} lr={lr:g} (cosine decay), batch {batch_size}, "
              f"{args.dtype}, seed {args.seed}"
              + (f", random shifts of up to {shift} px" if shift else "")
              + (f"; data-parallel on {where}" if where else "")
              + f"\nmodel: {describe(model)}", flush=True)
        history = _train_epochs(model, optimizer, step, transform, shift, rng, X,
                                train_data, Xt, test_data, epochs, batch_size, lr, n_classes)

    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            raise CLIError(f"--save {args.save}: cannot write the model: {exc}") from None
    if plot:
        save_plot(history, plot, plot_format)
    wall = time.perf_counter() - t_start
    n_right = int(round(history["test_acc"][-1] * len(test_data)))
    threads = args.threads if args.threads is not None else args.default_threads
    print(f"test accuracy {history['test_acc'][-1]:.2%} ({n_right}/{len(test_data)}) after "
          f"{epochs} epoch{'s' * (epochs != 1)} | wall time {wall:.1f} s | threads {threads}"
          + (f" | saved {args.save}" if args.save else "")
          + (f" | plot {plot}" if plot else ""), flush=True)
    return 0


def _train_epochs(model, optimizer, step, transform, shift, rng, X, train_data, Xt,
                  test_data, epochs, batch_size, lr, n_classes):
    """The epochs of ``cnnext train``, each ended by a test; returns the history.

    Per epoch, ``rng`` draws the batch order and then, per batch, the
    shifts: the same draws in this process and on a Dask cluster.
    """
    progress = Progress(epochs, len(train_data))
    history = {"loss": [], "acc": [], "test_loss": [], "test_acc": []}
    too_high = DIVERGED * np.log(n_classes)
    # Overflows are how divergence starts: the loss check below reports it,
    # in one line instead of numpy's warnings.
    with np.errstate(over="ignore", invalid="ignore"), progress.breaking_line():
        for epoch in range(1, epochs + 1):
            progress.start(epoch)
            optimizer.lr = _cosine_lr(lr, epoch, epochs)
            order = rng.permutation(len(train_data))
            for i in range(0, len(order), batch_size):
                batch = order[i:i + batch_size]
                per_example = (draw_shifts(rng, len(batch), shift),) if shift else ()
                loss, accuracy = step(batch, transform, per_example)
                if not loss <= too_high:  # NaN too
                    how = (f"reached {loss:.4g}, over {DIVERGED} x log({n_classes}) = "
                           f"{too_high:.4g} (log({n_classes}) is the loss of guessing)"
                           if np.isfinite(loss) else f"became {loss}")
                    raise CLIError(f"training diverged at epoch {epoch}: the loss of a "
                                   f"batch {how}; try a smaller --lr (now {lr:g})")
                progress.update(len(batch), loss, _n_correct(accuracy, len(batch)))
            test_loss, test_acc = model.evaluate(Xt, test_data.y)
            for key, value in zip(history, (progress.loss, progress.accuracy,
                                            test_loss, test_acc)):
                history[key].append(value)
            progress.end(f"  | test loss {test_loss:.4f}  acc {test_acc:6.2%}")
    return history


def predict(args):
    """``cnnext predict``: print a saved model's predictions; returns the exit status 0."""
    t_start = args.t_start
    if not os.path.exists(args.model):
        raise CLIError(f"{args.model}: no such file")
    if os.path.isdir(args.model):
        raise CLIError(f"{args.model}: is a directory, not a model file")
    check_zip(args.model)
    try:
        model = nn.load(args.model)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise CLIError(f"{args.model}: not a model saved by 'cnnext train --save': "
                       f"{exc}") from None
    errors_plot = errors_format = None
    if args.show_errors:
        errors_plot, errors_format = plot_target(args.show_errors, "--show-errors")
        check_output(errors_plot, "--show-errors", [("model", args.model), ("data", args.data)])
    if args.data in NAMED:  # the held-out split of the model's seed
        _, data = NAMED[args.data](int(model.meta.get("seed", 0)))
    else:
        data = load_file(args.data, ["test_set", "train_set"], require_labels=False)
    if errors_plot and data.y is None:
        raise CLIError(f"--show-errors needs labels, and {data.source} has none")
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
    shown = ""
    if errors_plot:
        n_wrong, n_drawn = save_errors(data.X, data.y, pred, classes, errors_plot,
                                       errors_format)
        shown = (f" | {n_wrong} misclassified, " + ("all drawn" if n_drawn == n_wrong
                                                    else f"the first {n_drawn} drawn")
                 + f" in {errors_plot}")
    wall = time.perf_counter() - t_start
    if data.y is not None:
        right = int((pred == data.y).sum())
        print(f"accuracy {right / len(pred):.2%} ({right}/{len(pred)}) on "
              f"{data.source} | wall time {wall:.1f} s{shown}")
    else:
        print(f"predicted {len(pred)} images of {data.source} (no labels, no "
              f"accuracy) | wall time {wall:.1f} s")
    return 0
