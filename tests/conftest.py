"""Shared fixtures over the tests' one numpy reference (``reference.py``).

pytest runs with ``--import-mode=importlib``, which keeps the checkout (and
its uncompiled ``cnnext/``) off ``sys.path``; this folder goes on it, so that
test modules can ``import reference`` too.
"""
import os
import sys
import types

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference  # noqa: E402


@pytest.fixture(scope="session")
def ref():
    """The vectorised float64 numpy reference of the eight functions."""
    return types.SimpleNamespace(
        zero_pad=reference.ref_zero_pad,
        conv_single_step=reference.ref_conv_single_step,
        conv_forward=reference.ref_conv_forward,
        conv_backward=reference.ref_conv_backward,
        pool_forward=reference.ref_pool_forward,
        pool_backward=reference.ref_pool_backward,
        create_mask_from_window=reference.ref_create_mask_from_window,
        distribute_value=reference.ref_distribute_value,
        out_size=reference.out_size,
    )


@pytest.fixture(scope="session")
def seed_ref():
    """The seed's per-pixel loops, for tiny shapes."""
    return types.SimpleNamespace(
        conv_forward=reference.seed_conv_forward,
        conv_backward=reference.seed_conv_backward,
        pool_forward=reference.seed_pool_forward,
        pool_backward=reference.seed_pool_backward,
    )


@pytest.fixture(scope="session")
def assert_close():
    """assert_close(actual, expected, dtype=None, rtol=None), see reference.py."""
    return reference.assert_close


@pytest.fixture
def level(request):
    """Run the test with every kernel at the level named by the parameter
    (``indirect=True``), then put back the level that ran before."""
    from cnnext import _dispatch
    before = _dispatch.selected
    yield _dispatch.select(request.param)
    _dispatch.select(before)
