"""The Examples of cnnext's docstrings run as doctests, on the installed build.

Every module of the package is searched (the public API, the layers, the CLI,
the benchmark, the private helpers), so an example that goes stale fails
here. Modules whose optional dependency is missing are skipped by name.
"""
import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import cnnext

# Modules whose examples need an optional package (beyond what they import).
EXAMPLES_NEED = {"cnnext.cli.outputs": "matplotlib", "cnnext._dask": "distributed"}

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(cnnext.__path__, "cnnext.")
                 if not name.endswith("__main__"))


def _examples(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    # The compiled kernels' docstrings are signatures, not examples.
    return [t for t in finder.find(module, module.__name__) if t.examples]


@pytest.mark.parametrize("name", ["cnnext"] + MODULES)
def test_docstring_examples_run(name):
    if name in EXAMPLES_NEED:
        pytest.importorskip(EXAMPLES_NEED[name])
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional dependency of that module
        pytest.skip(f"{name} needs {exc.name}")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # Keep the examples' print-outs as the docs show them, whatever the
    # user's numpy print options.
    with np.printoptions(legacy=False):
        for test in _examples(module):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_every_public_function_has_an_example():
    missing = [name for name in cnnext.__all__
               if callable(getattr(cnnext, name))
               and ">>>" not in (getattr(cnnext, name).__doc__ or "")]
    assert missing == [], f"public functions without an Examples section: {missing}"


def test_the_doctests_find_examples():
    # Guard against a finder that silently finds nothing (and so passes):
    # the public API alone has an example per function.
    public = [name for name in cnnext.__all__ if callable(getattr(cnnext, name))]
    found = sum(len(t.examples) for t in _examples(cnnext))
    assert found >= 2 * len(public)
