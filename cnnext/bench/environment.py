"""What the benchmark ran on: the machine, the versions, the thread pools and
the OpenBLAS variables, as the JSON keeps them and the header prints them."""
import os
import platform
import subprocess
import time

import numpy as np

import cnnext

from .._threads import available_cpus, threadpoolctl_or_none

# Set on some machines for old OpenBLAS builds; they slow a current numpy's
# OpenBLAS down, so the command re-runs itself without them (cli.py).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# The variable through which the re-run process learns what was unset.
UNSET_MARK = "CNNEXT_BENCH_UNSET_OPENBLAS"


def loadavg():
    """The 1, 5 and 15 minute load averages, or None where the OS has none
    (Windows)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threadpool_info():
    """threadpoolctl's list of BLAS / OpenMP pools, or None without it."""
    tpc = threadpoolctl_or_none()
    return None if tpc is None else tpc.threadpool_info()


def _lscpu_model():
    """lscpu's "Model name" (what /proc/cpuinfo may not say as plainly), or None."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def environment(cfg, torch, contenders=None, left_out=()):
    """The machine and settings of a run (``torch``: the module, or None;
    ``contenders``: {name: module} of :func:`cnnext.bench.contenders.load`;
    ``left_out``: the names the options left out)."""
    pools = threadpool_info()
    env = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "cpu": _lscpu_model() or _cpu_model(), "cpus_available": available_cpus(),
           "loadavg_start": loadavg(), "python": platform.python_version(),
           "numpy": np.__version__, "cnnext": cnnext.__version__,
           "torch": None if torch is None else torch.__version__,
           "threads": cfg.threads,
           "openblas_env_unset_by_bench": os.environ.get(UNSET_MARK) or None,
           "openblas_env": {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ},
           "threadpools": None if pools is None else [
               {k: d.get(k) for k in ("internal_api", "version", "architecture",
                                      "num_threads", "threading_layer", "filepath")}
               for d in pools]}
    versions = {}
    for name, module in (contenders or {}).items():
        if hasattr(module, "versions"):
            versions.update(module.versions())
    env["contender_versions"] = versions
    env["contenders_left_out"] = list(left_out)
    env["xla_flags"] = os.environ.get("XLA_FLAGS") if "jax" in (contenders or {}) else None
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return env
