"""The errors a user can cause, and the optional packages some options need."""
import importlib

EXTRA_HINT = 'install it with: pip install "cnnext[{extra}]"'
_PIP_NAMES = {"sklearn": "scikit-learn"}


class CLIError(Exception):
    """An error caused by the user's input; printed as one line."""


def require(module, why, extra="examples"):
    """Import an optional dependency, or fail with one clear line.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"sklearn.datasets"``.
    why : str
        What needs it, e.g. ``"--plot"``; starts the error message.
    extra : str, default "examples"
        The cnnext extra that installs it, for the message.

    Returns
    -------
    module : module

    Raises
    ------
    CLIError
        When the module cannot be imported, naming the package to install.

    Examples
    --------
    >>> require("json", "reading the config").__name__
    'json'
    >>> require("no_such_module", "--frobnicate")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnext.cli.errors.CLIError: --frobnicate needs no_such_module, which is not installed; ...
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        name = _PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
        raise CLIError(f"{why} needs {name}, which is not installed; "
                       f"{EXTRA_HINT.format(extra=extra)}") from None
