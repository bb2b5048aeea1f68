"""Junk-input campaign: feed cnnext generated garbage, record what it raises.

Run as a child process by tests/test_junk.py (so a crash is a return code, not
a dead test run), or by hand for a bigger campaign:

    python tests/junk_campaign.py N_CASES SEED [TRACE_FILE]

Every case calls one public function with arguments that are wrong in one or
more ways: wrong shapes and ranks, unsupported dtypes (complex, object,
string, datetime, long double), non-array objects, hyperparameters missing,
negative, zero, huge (past 2**63), non-integer or of the wrong type, pairs
and 4-tuples of those, padding words right and wrong, malformed
or cross-wired caches, and bad modes; and set_num_threads with the same
junk integers (the thread count is restored after every case). A share of the cases is a valid call with
exactly one part broken, so the deeper checks and the kernels are reached too.

Prints ``CASES <n>``, then ``OUTCOME <function> <outcome> <count>`` lines
(outcome: returned, ValueError, TypeError or UNEXPECTED:<type>), and for each
unexpected exception type, per function, the first call that raised it
(``FIRST <function> UNEXPECTED:<type> <call>``). A crash ends the
process with a signal; faulthandler prints where, and TRACE_FILE (if given)
holds the call that was running.
"""
import collections
import faulthandler
import math
import sys

import numpy as np
from hypothesis import HealthCheck, given, seed, settings, strategies as st

import cnnext

faulthandler.enable()
np.seterr(all="ignore")  # inf and NaN inputs are fair game; their warnings are noise

HUGE = [2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 2**100]
BAD_SCALARS = [None, 1.0, 2.5, math.nan, math.inf, "1", "stride", b"1", True, False,
               1 + 0j, [1], (2,), {}, np.array(2), np.array([1, 2]), np.float64(2.0),
               np.bool_(True), object()]
DTYPES = ["float64", "float32", "float16", "int8", "int64", "uint64", "bool",
          "complex64", "complex128", "longdouble", "object", "U3", "S2",
          "datetime64[s]", "timedelta64[ms]", [("a", "f8"), ("b", "i4")]]
MODES = ["max", "average", "avg", "mean", "MAX", "", " max", None, 0, 1, b"max",
         ["max"], np.str_("average"), True]


def hp_ints():
    return st.one_of(st.integers(-3, 6), st.sampled_from(HUGE),
                     st.sampled_from([-2**63, -2**64]),
                     st.sampled_from([np.int64(2), np.uint8(1), np.int32(-1),
                                      np.uint64(2**64 - 1)]),
                     st.sampled_from(BAD_SCALARS))


# The geometry's other value forms (issue 12): pairs, 4-tuples, the padding
# words, right and wrong, with junk inside.
PAD_WORDS = ["same", "valid", "SAME", "full", "", "causal"]


def hp_values():
    return st.one_of(hp_ints(), st.sampled_from(PAD_WORDS),
                     st.lists(hp_ints(), min_size=0, max_size=5).map(tuple),
                     st.lists(st.integers(-1, 4), min_size=1, max_size=5))


@st.composite
def junk_arrays(draw, ndim=None):
    """An ndarray of any rank, size and dtype, or something that is not one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, 3, 3.5, "abc", b"x", [], [[1, 2], [3]],
                                     {"a": 1}, object(), slice(1), (1, 2)]))
    if ndim is None:
        ndim = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    return filled(shape, draw(st.sampled_from(DTYPES)), draw(st.integers(0, 4)))


def filled(shape, dtype, kind):
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return np.full(shape, "a" if dtype.kind != "O" else 1, dtype=dtype)
    if dtype.kind in "MmV":
        return np.zeros(shape, dtype=dtype)
    fill = [0, 1, -1, math.nan, math.inf][kind]
    if dtype.kind in "biu" and not math.isfinite(fill):
        fill = 7
    if dtype.kind == "u":
        fill = abs(fill)
    with np.errstate(all="ignore"):
        return np.full(shape, fill).astype(dtype)


@st.composite
def junk_hparameters(draw, keys):
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from([None, [], 3, "stride", [("stride", 1)], (1, 2)]))
    chosen = draw(st.lists(st.sampled_from(keys + ["extra"]), unique=True))
    return {key: draw(hp_values()) for key in chosen}


@st.composite
def near_valid_conv(draw):
    """A valid conv_forward call's arguments, then one part broken (or none)."""
    f = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 4))
    stride = draw(st.integers(1, 3))
    lo = max(1, f - 2 * pad)
    m, H, Wd, C, n_C = (draw(st.integers(0, 2)), draw(st.integers(lo, lo + 3)),
                        draw(st.integers(lo, lo + 3)), draw(st.integers(0, 3)),
                        draw(st.integers(0, 3)))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    args = [filled((m, H, Wd, C), dtype, 1), filled((f, f, C, n_C), dtype, 2),
            filled((1, 1, 1, n_C), dtype, 0), {"stride": stride, "pad": pad}]
    broken = draw(st.integers(-1, 3))
    if broken == 3:
        key = draw(st.sampled_from(["stride", "pad", "dilation", "groups"]))
        args[3] = dict(args[3], **{key: draw(hp_values())})
    elif broken >= 0:
        args[broken] = draw(junk_arrays(ndim=draw(st.integers(3, 5))))
    return args


@st.composite
def near_valid_pool(draw):
    f = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    shape = (draw(st.integers(0, 2)), draw(st.integers(f, f + 3)),
             draw(st.integers(f, f + 3)), draw(st.integers(0, 3)))
    args = [filled(shape, draw(st.sampled_from(["float64", "float32", "int8"])), 1),
            {"f": f, "stride": stride}]
    broken = draw(st.integers(-1, 1))
    if broken == 1:
        key = draw(st.sampled_from(["f", "stride", "pad", "dilation", "count_include_pad"]))
        args[1] = dict(args[1], **{key: draw(hp_values())})
    elif broken == 0:
        args[0] = draw(junk_arrays(ndim=draw(st.integers(3, 5))))
    return args


def conv_args(draw):
    if draw(st.booleans()):
        return draw(near_valid_conv())
    return [draw(junk_arrays()), draw(junk_arrays()), draw(junk_arrays()),
            draw(junk_hparameters(["stride", "pad", "dilation", "groups"]))]


def pool_args(draw):
    if draw(st.booleans()):
        return draw(near_valid_pool())
    return [draw(junk_arrays()), draw(junk_hparameters(["f", "stride", "pad", "dilation",
                                                         "count_include_pad"]))]


class MatchingGrad:
    """Stands for a gradient shaped like the forward output of the cache.

    Resolved inside the case (a forward call on the cache), so that a crash
    in that forward call is traced like any other call."""

    def __init__(self, forward, forward_args, dtype, mode=None):
        self.forward, self.forward_args = forward, forward_args
        self.dtype, self.mode = dtype, mode

    def resolve(self):
        kwargs = {} if self.mode is None else {"mode": self.mode}
        try:
            out = self.forward(*self.forward_args, **kwargs)[0]
        except (ValueError, TypeError):
            return np.zeros(3)  # the cache is refused: any gradient will do
        return filled(out.shape, self.dtype, 2)

    def __repr__(self):
        kwargs = {} if self.mode is None else {"mode": self.mode}
        return (f"<{self.dtype} gradient shaped by "
                f"{describe(self.forward.__name__, self.forward_args, kwargs)}>")


def grad_for(draw, forward, forward_args, mode=None):
    """A gradient of the right shape, usually; else junk."""
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(["float64", "float32", "int8"]))
        return MatchingGrad(forward, forward_args, dtype, mode)
    return draw(junk_arrays())


@st.composite
def calls(draw):
    """(function name, args, kwargs) for one junk call."""
    name = draw(st.sampled_from([
        "zero_pad", "conv_single_step", "conv_forward", "conv_backward",
        "pool_forward", "pool_backward", "create_mask_from_window", "distribute_value",
        "set_num_threads"]))
    if name == "set_num_threads":
        return name, [draw(hp_ints())], {}
    if name == "zero_pad":
        return name, [draw(junk_arrays()), draw(hp_ints())], {}
    if name == "conv_single_step":
        return name, [draw(junk_arrays()) for _ in range(3)], {}
    if name == "conv_forward":
        return name, conv_args(draw), {}
    if name == "pool_forward":
        return name, pool_args(draw), {"mode": draw(st.sampled_from(MODES))}
    if name == "conv_backward":
        cache = conv_args(draw)
        dZ = grad_for(draw, cnnext.conv_forward, cache)
        wrapper = draw(st.sampled_from([tuple, list, "short", "long", "pool", "none"]))
        if wrapper in (tuple, list):
            cache = wrapper(cache)
        elif wrapper == "short":
            cache = tuple(cache[:draw(st.integers(0, 3))])
        elif wrapper == "long":
            cache = tuple(cache) + (None,)
        elif wrapper == "pool":
            cache = tuple(pool_args(draw))
        else:
            cache = draw(st.sampled_from([None, 3, "cache", {}, np.zeros(4)]))
        return name, [dZ, cache], {}
    if name == "pool_backward":
        cache = pool_args(draw)
        mode = draw(st.sampled_from(MODES))
        dA = grad_for(draw, cnnext.pool_forward, cache, mode="max")
        wrapper = draw(st.sampled_from([tuple, list, "short", "conv", "none"]))
        if wrapper in (tuple, list):
            cache = wrapper(cache)
        elif wrapper == "short":
            cache = tuple(cache[:1])
        elif wrapper == "conv":
            cache = tuple(conv_args(draw))
        else:
            cache = draw(st.sampled_from([None, 3, "cache", {}, np.zeros(2)]))
        return name, [dA, cache], {"mode": mode}
    if name == "create_mask_from_window":
        return name, [draw(junk_arrays())], {}
    shape = draw(st.one_of(
        st.tuples(hp_ints(), hp_ints()).filter(lambda s: not _huge_but_allocatable(s)),
        st.sampled_from([None, 4, (2,), (1, 2, 3), [2, 2], "22", (2.0, 2), np.array([2, 2])])))
    return name, [draw(junk_arrays()), shape], {}


def _huge_but_allocatable(shape):
    """distribute_value((2**31, 1)) is a legal 16 GiB request: not junk."""
    try:
        n = int(shape[0]) * int(shape[1])
    except (TypeError, ValueError, OverflowError):
        return False
    return 1 <= int(shape[0]) and 1 <= int(shape[1]) and 10**6 < n < 2**61


def describe(name, args, kwargs):
    def short(x):
        if isinstance(x, np.ndarray):
            return f"ndarray(shape={x.shape}, dtype={x.dtype})"
        if isinstance(x, (tuple, list)):
            inner = ", ".join(short(v) for v in x)
            return f"({inner})" if isinstance(x, tuple) else f"[{inner}]"
        return repr(x)
    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def main(n_cases, seed_value, trace_path=None):
    default_threads = cnnext.get_num_threads()
    outcomes = collections.Counter()
    trace = open(trace_path, "w") if trace_path else None
    first_unexpected = {}

    @seed(seed_value)
    @settings(max_examples=n_cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(call=calls())
    def campaign(call):
        name, args, kwargs = call
        if trace is not None:  # what was running, should the process die
            trace.seek(0)
            trace.write(describe(name, args, kwargs))
            trace.truncate()
            trace.flush()
        try:
            if isinstance(args[0], MatchingGrad):
                args[0] = args[0].resolve()
            getattr(cnnext, name)(*args, **kwargs)
            outcome = "returned"
        except (ValueError, TypeError) as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # anything else is a finding
            outcome = f"UNEXPECTED:{type(exc).__name__}"
            first_unexpected.setdefault(
                (name, outcome),
                f"{describe(name, args, kwargs)} -> {type(exc).__name__}: {exc}")
        finally:
            cnnext.set_num_threads(default_threads)
        outcomes[name, outcome] += 1

    campaign()
    print("CASES", sum(outcomes.values()))
    for (name, outcome), count in sorted(outcomes.items()):
        print("OUTCOME", name, outcome, count)
    for (name, outcome), call in sorted(first_unexpected.items()):
        print("FIRST", name, outcome, call)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4])
