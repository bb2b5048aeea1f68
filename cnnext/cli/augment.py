"""Data augmentation for ``cnnext train``: random shifts of whole images.

Each training image is moved by (dy, dx) pixels, both drawn uniformly from
-max_shift..max_shift every time the image is seen, and the pixels that come
in are zeros: over 25 epochs the model sees 25 slightly different training
sets instead of one, which is what a 4,000-image training set needs (see
the README's main job for the accuracy with and without).

The offsets are drawn on the caller's generator, apart from the shifting,
so that ``cnnext train --dask`` can draw them on the client and shift on
the workers, and get the same images as one process.
"""
import numpy as np


def draw_shifts(rng, n, max_shift):
    """Offsets of ``n`` images into their zero-padded copies.

    Returns
    -------
    offsets : ndarray of int64, shape (n, 2)
        (row, column) offsets in 0..2*max_shift; an offset of ``max_shift``
        leaves the image where it is.

    Examples
    --------
    >>> offsets = draw_shifts(np.random.default_rng(0), 3, 2)
    >>> offsets.shape, bool(((0 <= offsets) & (offsets <= 4)).all())
    ((3, 2), True)
    """
    return rng.integers(0, 2 * max_shift + 1, size=(n, 2))


def shift_images(X, offsets, max_shift):
    """Each image of ``X`` (m, H, W, C) shifted by its offset:
    ``out[i, r, c] = X[i, r + dy, c + dx]`` with ``(dy, dx) = offsets[i] -
    max_shift``, and zero where that falls outside the image.

    Examples
    --------
    >>> X = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> shift_images(X, np.array([[2, 1]]), 1)[0, :, :, 0]   # one row up
    array([[3., 4., 5.],
           [6., 7., 8.],
           [0., 0., 0.]])
    """
    m, H, W, _ = X.shape
    offsets = np.asarray(offsets)
    if offsets.shape != (m, 2):
        raise ValueError(f"offsets must have shape ({m}, 2), one (row, column) pair per "
                         f"image; got {offsets.shape}")
    k = max_shift
    padded = np.pad(X, ((0, 0), (k, k), (k, k), (0, 0)))
    rows = offsets[:, 0, None] + np.arange(H)
    cols = offsets[:, 1, None] + np.arange(W)
    return padded[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]
