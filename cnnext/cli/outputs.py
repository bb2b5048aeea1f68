"""The files ``cnnext train`` and ``cnnext predict`` write (``--save``,
``--plot``, ``--show-errors``): checked before training or predicting
starts, so that a bad path fails in a second, not after the run."""
import io
import os

import numpy as np

from .errors import CLIError, require


def check_output(path, option, others=()):
    """Fail unless ``path`` can be written as the file of ``option``.

    Parameters
    ----------
    path : str
    option : str
        ``"--save"`` or ``"--plot"``, for the message.
    others : sequence of (str, str or None)
        (option, path) of the command's other files, e.g.
        ``[("--data", args.data)]``: writing over one of them is refused.

    Raises
    ------
    CLIError
        When ``path`` is a directory, its directory does not exist or is not
        writable, or it is one of ``others``.

    Examples
    --------
    >>> check_output("model.npz", "--save")
    >>> check_output("/", "--save")
    Traceback (most recent call last):
    ...
    cnnext.cli.errors.CLIError: --save /: is a directory; give a file name in it
    """
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory; give a file name in it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{option} {path}: directory {parent} is not writable")
    for other_option, other_path in others:
        if other_path and _same_file(path, other_path):
            raise CLIError(f"{option} {path}: is the {other_option} file too; give "
                           f"{option} a file of its own")


def _same_file(a, b):
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def plot_target(path, option="--plot"):
    """The file ``option path`` writes and its format, checked with matplotlib.

    The format is the extension's; without one, ``.png`` is added (as
    matplotlib would), so that the name reported is the file written.

    Returns
    -------
    path, fmt : str, str

    Raises
    ------
    CLIError
        Without matplotlib, for a directory, for an extension matplotlib has
        no writer for, or when it cannot write the format here (e.g. .pgf
        without LaTeX).

    Examples
    --------
    >>> plot_target("curves")
    ('curves.png', 'png')
    >>> plot_target("curves.PDF")
    ('curves.PDF', 'pdf')
    """
    require("matplotlib", option)
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.figure import Figure
    if os.path.isdir(path):  # not "adir.png": the user meant a place, not a name
        raise CLIError(f"{option} {path}: is a directory; give a file name in it")
    ext = os.path.splitext(path)[1]
    if ext in ("", "."):
        path, ext = path.rstrip(".") + ".png", ".png"
    fmt = ext[1:].lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise CLIError(f"{option} {path}: no figure format {ext}; use one of "
                       f"{', '.join('.' + k for k in sorted(supported))} (no extension: "
                       f".png is added)")
    trial = Figure(figsize=(1, 1))
    trial.text(0.5, 0.5, "loss")  # .pgf needs LaTeX only once there is text
    try:  # a writer may need more than matplotlib: LaTeX, Pillow's codecs
        trial.savefig(io.BytesIO(), format=fmt)
    except Exception as exc:
        raise CLIError(f"{option} {path}: matplotlib cannot write {ext} figures here: "
                       f"{type(exc).__name__}: {exc}") from None
    return path, fmt


def save_plot(history, path, fmt):
    """Plot loss and accuracy per epoch, train and test, into ``path``."""
    from matplotlib.figure import Figure  # not pyplot: no global backend or state
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(9, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
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
        fig.savefig(path, format=fmt)
    except (OSError, ValueError) as exc:
        raise CLIError(f"--plot {path}: cannot write the figure: {exc}") from None


# --show-errors draws at most this many images (a 10 x 10 grid stays legible).
MAX_ERRORS_DRAWN = 100


def save_errors(X, y, pred, classes, path, fmt):
    """Draw the misclassified images of X, each titled with its index, true
    and predicted class, into ``path``; a figure saying so if there are none.

    Returns
    -------
    n_wrong, n_drawn : int, int
        How many images were misclassified, and how many of them (the
        first :data:`MAX_ERRORS_DRAWN`) were drawn.
    """
    from matplotlib.figure import Figure
    wrong = np.flatnonzero(pred != y)
    drawn = wrong[:MAX_ERRORS_DRAWN]
    cols = int(np.ceil(np.sqrt(len(drawn)))) or 1
    rows = int(np.ceil(len(drawn) / cols)) or 1
    fig = Figure(figsize=(1.3 * cols + 0.4, 1.6 * rows + 0.6))
    fig.suptitle(f"{len(wrong)} of {len(y)} images misclassified"
                 + (f" (first {len(drawn)} shown)" if len(drawn) < len(wrong) else ""))
    if len(drawn) == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for k, i in enumerate(drawn):
        ax = fig.add_subplot(rows, cols, k + 1)
        image = X[i]
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray_r")
        else:
            ax.imshow(np.clip(image[..., :3], 0, 1))
        ax.set_title(f"#{i} true {classes[y[i]]}\npredicted {classes[pred[i]]}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    try:
        fig.savefig(path, format=fmt)
    except (OSError, ValueError) as exc:
        raise CLIError(f"--show-errors {path}: cannot write the figure: {exc}") from None
    return len(wrong), len(drawn)
