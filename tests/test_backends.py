"""The RTL backends (firmware/backends.py): the same firmware on golden, rtl-sim and pysim.

The same firmware code — matrix products of random shapes (not multiples of the array size
too), a few MLP training steps, inference — must leave main memory, the results and the cycle
counts identical on the golden model, the SoC in the compiled simulator (``rtl-sim``) and, for a
small configuration, the SoC in Amaranth's simulator (``pysim``). ``Accelerator("rtl-sim")`` on
the default 8×8 SoC is in the slow suite (its first compiled model takes minutes to build).

The default suite's compiled model is built with ``-O0`` (tens of seconds on a cold cache).
"""

import numpy as np
import pytest
import torch

from firmware import Accelerator
from firmware.backends import PysimDevice, RtlSimDevice
from firmware.device import DeviceError, DeviceTimeout, GoldenDevice
from firmware.asm import Assembler
from golden.fixedpoint import requantize
from spec.isa import Cond, Error
from spec.params import Config, ArrayConfig
from spec.selection import SelectorConfig
from spec.soc import SocConfig

pytestmark = pytest.mark.xdist_group("cxxsim")

SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=4096,
                sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=16,
                selector=SelectorConfig(classes=3, k=2, p=2))
FAST = ("-O0",)


def reference(a, b, shift):
    """round-half-even(a @ b / 2**shift) of the 32-bit wrapped sums, saturated to int16."""
    s = a.astype(object) @ b.astype(object)
    s = np.array([[((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31) for v in row] for row in s],
                 dtype=np.int64).reshape(s.shape)
    return requantize(torch.from_numpy(s), shift, 16)[0].numpy()


@pytest.fixture(scope="module")
def devices():
    rtl = RtlSimDevice(SOC, cxxflags=FAST)
    yield {"golden": GoldenDevice(SOC), "rtl-sim": rtl, "pysim": PysimDevice(SOC)}
    rtl.close()


def same_everywhere(devices, work):
    """Run ``work(Accelerator)`` on each device; its results, cycles and memory must agree."""
    out = {}
    for name, dev in devices.items():
        acc = Accelerator(dev)
        res = work(acc)
        out[name] = (res, acc.last_cycles, dev.read_words(0, SOC.mem_words), dev.counters())
    g = out["golden"]
    for name, (res, cycles, mem, counters) in out.items():
        for x, y in zip(res, g[0]):
            np.testing.assert_array_equal(x, y, err_msg=f"{name} result")
        assert cycles == g[1], f"{name}: {cycles} cycles, golden {g[1]}"
        diff = np.flatnonzero(mem != g[2])
        assert not diff.size, f"{name}: memory differs from golden first at word {diff[0]}"
        assert counters == g[3], f"{name} counters {counters} != golden {g[3]}"
    return g


@pytest.mark.parametrize("seed", range(3))
def test_matmul_same_on_every_backend(devices, seed):
    rng = np.random.default_rng(seed)
    m, k, n = (int(v) for v in rng.integers(1, 8, 3))
    shift = int(rng.integers(0, 16))
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    (c,), cycles, _, _ = same_everywhere(devices, lambda acc: (acc.matmul(a, b, shift=shift),))
    np.testing.assert_array_equal(c, reference(a, b, shift))
    assert cycles > 0


def test_stochastic_matmul_and_training_same_on_every_backend(devices):
    rng = np.random.default_rng(7)
    X = rng.random((12, 3))
    y = rng.integers(0, 3, 12)
    a = rng.integers(-300, 300, (3, 5))
    b = rng.integers(-300, 300, (5, 2))

    def work(acc):
        c = acc.matmul(a, b, shift=4, rounding="stochastic", seed=5)
        net = acc.mlp((3, 4, 3), batch=2, seed=1)
        net.fit(X, y, steps=3, lr=2**-3)       # the device's generator: seeded once, then kept
        net.fit(X, y, steps=2, lr=2**-4)
        teacher = acc.mlp((3, 4, 3), batch=2, seed=3, train=False, select=True)
        per_class = teacher.label_select(X[:7])          # a partly filled last block
        flat = np.array([v for lst in per_class for e in lst for v in e] or [0])
        return [c, *net.weights, net.logits(X[:5]), net.probs(X[:3]), flat]

    same_everywhere(devices, work)


def test_rtl_sim_errors_and_timeouts(devices):
    dev = devices["rtl-sim"]
    p = Assembler(64)
    p.ldw(rd=1, rs=0, imm=SOC.mem_words)             # outside main memory
    p.halt()
    dev.load_program(64, p)
    with pytest.raises(DeviceError, match=r"Device halted with error MEM_RANGE at pc 0x40: LDW"):
        dev.run(64)
    loop = Assembler(64)
    loop.label("top")
    loop.br(cond=Cond.EQ, rs1=0, rs2=0, target="top")
    dev.load_program(64, loop)
    with pytest.raises(DeviceTimeout, match=r"did not halt within 500 cycles"):
        dev.run(64, max_cycles=500)
    halt = Assembler(64)
    halt.halt()
    dev.load_program(64, halt)
    assert dev.run(64).error == Error.NONE                # usable after a timeout


def test_backend_arguments():
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 'x'"):
        PysimDevice("x")
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 3"):
        RtlSimDevice(3)
    dev = PysimDevice(SOC)
    with pytest.raises(ValueError, match=r"Write of 2 words at 4095 is outside main memory"):
        dev.write_words(4095, [1, 2])
    assert Accelerator("pysim", soc=SOC).device.config == SOC


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_rtl_sim_matmul_default_soc(seed):
    """``Accelerator("rtl-sim").matmul`` == NumPy reference, default 8×8 SoC, shapes that are
    not multiples of 8, equal cycles to golden."""
    acc, gold = _default_rtl(), Accelerator("golden")
    rng = np.random.default_rng(100 + seed)
    m, k, n = (int(v) for v in rng.integers(1, 70, 3))
    if seed == 0:
        m, k, n = 8, 16, 24
    shift = int(rng.integers(0, 20))
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    c = acc.matmul(a, b, shift=shift)
    np.testing.assert_array_equal(c, reference(a, b, shift))
    assert c.dtype == np.int16 and c.shape == (m, n)
    gold.matmul(a, b, shift=shift)
    assert acc.last_cycles == gold.last_cycles


_DEFAULT = []


def _default_rtl():
    if not _DEFAULT:
        _DEFAULT.append(Accelerator("rtl-sim"))
    return _DEFAULT[0]
