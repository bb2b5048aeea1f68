"""The tests run against a compiled cnnext and, in CI, against the installed one.

The kernel modules must be compiled extensions (never a pure-Python stand-in).
With CNNEXT_TEST_INSTALLED=1 in the environment (.ci/run sets it), cnnext must
come from an installed copy (site-packages), not from the checkout's source
tree, and that copy must be built from this checkout's sources.
"""
import importlib
import importlib.machinery
import importlib.metadata
import os
import pathlib

import pytest

import cnnext

CHECKOUT = pathlib.Path(__file__).resolve().parents[1]
INSTALLED = os.environ.get("CNNEXT_TEST_INSTALLED") == "1"
needs_installed = pytest.mark.skipif(
    not INSTALLED, reason="set CNNEXT_TEST_INSTALLED=1 to check the installed package "
                          "(.ci/run does)")


@pytest.mark.parametrize("name", ["_conv", "_pool"])
def test_kernels_are_compiled_extensions(name):
    mod = importlib.import_module(f"cnnext.{name}")
    assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__
    assert isinstance(mod.__spec__.loader, importlib.machinery.ExtensionFileLoader)
    assert pathlib.Path(mod.__file__).resolve().parent == pathlib.Path(cnnext.__file__).resolve().parent


@needs_installed
def test_cnnext_is_installed_not_the_checkout():
    package_dir = pathlib.Path(cnnext.__file__).resolve().parent
    assert package_dir != CHECKOUT / "cnnext", (
        f"cnnext was imported from the checkout's source tree {package_dir}, "
        "not from the installed package")
    assert package_dir.parent.name in ("site-packages", "dist-packages"), package_dir
    # an editable install would map back into the checkout
    for name in ("_conv", "_pool"):
        mod = importlib.import_module(f"cnnext.{name}")
        assert pathlib.Path(mod.__file__).resolve().parent == package_dir


@needs_installed
def test_installed_copy_is_built_from_this_checkout():
    # a stale install from other sources would differ from the checkout
    package_dir = pathlib.Path(cnnext.__file__).resolve().parent
    for name in ("__init__.py", "_version.py"):
        assert (package_dir / name).read_bytes() == (CHECKOUT / "cnnext" / name).read_bytes(), name
    assert importlib.metadata.version("cnnext") == cnnext.__version__
