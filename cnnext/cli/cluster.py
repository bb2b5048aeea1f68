"""``cnnext train --dask``: the Dask cluster a training run goes data-parallel on.

``local:N`` starts a ``distributed.LocalCluster`` of N worker processes on
this machine (each process one Dask thread; cnnext's kernels in each get
their share of the cores, :func:`cnnext._dask.cap_worker_threads`), and
closes it at the end. Anything else is the address of a running scheduler
(``tcp://host:8786``, ``host:8786``), as ``distributed.Client`` takes it.
"""
from contextlib import contextmanager
import logging
import re

from .errors import CLIError, require

# How long to wait for a scheduler that does not answer, in seconds.
CONNECT_TIMEOUT = 10
_LOCAL = re.compile(r"local:(\d+)\Z")


def parse_dask(text):
    """Check a ``--dask`` value: ``local:N`` (N >= 1) or a scheduler address.

    Returns
    -------
    spec : str
        ``text``, checked.

    Examples
    --------
    >>> parse_dask("local:2")
    'local:2'
    >>> parse_dask("local:0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected local:N with N >= 1 workers, or a scheduler address such as tcp://host:8786; got 'local:0'
    """
    import argparse
    match = _LOCAL.match(text)
    ok = (int(match.group(1)) >= 1) if match else (
        bool(text) and not text.startswith("local") and not any(c.isspace() for c in text))
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected local:N with N >= 1 workers, or a scheduler address such as "
            f"tcp://host:8786; got {text!r}")
    return text


def describe(spec, client):
    """'2 Dask workers (local:2)'-style text for the run's first line."""
    n = len(client.scheduler_info(n_workers=-1)["workers"])
    return f"{n} Dask worker{'s' * (n != 1)} ({spec})"


@contextmanager
def dask_client(spec):
    """A ``distributed.Client`` for ``spec`` (see :func:`parse_dask`), closed
    (with its local cluster) when the block ends.

    Raises
    ------
    CLIError
        When distributed is not installed or the scheduler cannot be reached.
    """
    distributed = require("distributed", "--dask", extra="dask")
    match = _LOCAL.match(spec)
    cluster = None
    try:
        if match:
            cluster = distributed.LocalCluster(
                n_workers=int(match.group(1)), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(spec, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise CLIError(f"--dask {spec}: cannot reach the scheduler: "
                       f"{type(exc).__name__}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
