"""Junk input ends in ValueError or TypeError, never a crash.

The campaign (tests/junk_campaign.py) runs in a child process: a segfault or
abort is then a return code this test reports, with the call that was running,
instead of a dead test run. Size: CNNEXT_JUNK_CASES (default 2000), seed:
CNNEXT_JUNK_SEED (default 20261126), so CI runs the same cases every time.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnext

N_CASES = int(os.environ.get("CNNEXT_JUNK_CASES", "2000"))
SEED = int(os.environ.get("CNNEXT_JUNK_SEED", "20261126"))
CAMPAIGN = Path(__file__).with_name("junk_campaign.py")


def run_child(args, tmp_path):
    """Run a Python child; return (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("junk")
    trace = tmp / "last_call.txt"
    rc, out, err = run_child([str(CAMPAIGN), str(N_CASES), str(SEED), str(trace)], tmp)
    last_call = trace.read_text() if trace.exists() else "(none)"
    return rc, out, err, last_call


def test_junk_campaign_does_not_crash(campaign):
    rc, out, err, last_call = campaign
    assert rc == 0, (f"the junk campaign died with return code {rc} during\n  "
                     f"{last_call}\nstderr:\n{err[-3000:]}")
    done = re.search(r"^CASES (\d+)$", out, re.M)
    assert done, f"no CASES line in the campaign's output:\n{out}\n{err[-3000:]}"
    assert int(done.group(1)) >= N_CASES
    print(f"junk campaign: {done.group(1)} cases, seed {SEED}")


def test_junk_campaign_raises_only_value_and_type_errors(campaign):
    rc, out, err, last_call = campaign
    assert rc == 0, f"the campaign did not finish (return code {rc}) during\n  {last_call}"
    outcomes = re.findall(r"^OUTCOME (\S+) (\S+) (\d+)$", out, re.M)
    assert outcomes
    unexpected = [line for line in out.splitlines() if line.startswith("FIRST ")]
    assert not unexpected, "\n".join(unexpected)
    # Every function of the assignment and set_num_threads was reached, and
    # every one refused something.
    names = {name for name, _, _ in outcomes}
    assert names == {"zero_pad", "conv_single_step", "conv_forward", "conv_backward",
                     "pool_forward", "pool_backward", "create_mask_from_window",
                     "distribute_value", "set_num_threads"}
    refused = {name for name, outcome, _ in outcomes if outcome != "returned"}
    assert refused == names


# Regression tests for what the campaign found.

PAD_WIDER_THAN_FILTER = r"""
import numpy as np, cnnext
A = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
W = np.full((1, 1, 1, 1), 2.0)
b = np.zeros((1, 1, 1, 1))
Z, cache = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 2})
dA, dW, db = cnnext.conv_backward(np.ones_like(Z), cache)
print(Z.shape, Z[0, 2:5, 2:5, 0].tolist(), float(Z.sum()), dA[0, :, :, 0].tolist(),
      float(dW.ravel()[0]), float(db.ravel()[0]))
"""


def test_conv_pad_wider_than_filter(tmp_path):
    """pad > f: windows wholly inside the padding. Run in a child: it crashed
    (heap overrun in _im2row, whose _window_span let lo exceed f)."""
    rc, out, err = run_child(["-c", PAD_WIDER_THAN_FILTER], tmp_path)
    assert rc == 0, f"conv_forward(f=1, pad=2) died with return code {rc}\n{err[-2000:]}"
    # A 1x1 filter of 2 over a 3x3 image padded by 2: 7x7 output, 2*A in the
    # middle, zeros around; every input pixel is seen once with weight 2.
    expected = (f"(1, 7, 7, 1) {(2 * np.arange(1.0, 10.0)).reshape(3, 3).tolist()} 90.0 "
                f"{np.full((3, 3), 2.0).tolist()} 45.0 49.0")
    assert out.strip() == expected


@pytest.mark.parametrize("call", [
    lambda A: cnnext.conv_forward(A, np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)),
                                  {"stride": 2**64, "pad": 0}),
    lambda A: cnnext.conv_forward(A, np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)),
                                  {"stride": 2**64, "pad": 2**63}),
    lambda A: cnnext.pool_forward(A, {"f": 1, "stride": 2**63}),
    lambda A: cnnext.pool_forward(A, {"f": 1, "stride": np.uint64(2**64 - 1)}),
], ids=["conv-stride", "conv-pad", "pool-stride", "pool-stride-uint64"])
def test_hyperparameter_past_ssize_t_is_a_value_error(call):
    """Hyperparameters past sys.maxsize give a small output, then reach the
    kernel's Py_ssize_t arguments: they raised OverflowError."""
    with pytest.raises(ValueError, match=r"hparameters\['(stride|pad)'\]"):
        call(np.ones((1, 3, 3, 1)))
