"""The public host API: an accelerator that multiplies matrices and trains MLPs.

Example::

    from firmware import Accelerator
    acc = Accelerator()                                  # the golden model
    c = acc.matmul(a, b, shift=8)                        # int16 in, int16 out
    net = acc.mlp((64, 32, 10), seed=0)
    net.fit(X, y, steps=300, lr=2**-3)
    print(net.evaluate(X_test, y_test), acc.last_cycles)

Everything runs on a :class:`firmware.device.Device`: the firmware writes programs and data to
main memory, runs, and reads the results back.
"""

import numpy as np

from spec.params import DEFAULT_FORMATS, check_int, check_positive_int
from spec.soc import SocConfig, DEFAULT_SOC
from .compiler import (MLPDescription, compile_matmul, compile_mlp, PARAM_DATA, PARAM_ID,
                       PARAM_OUT, PARAM_STEPS)
from .checks import check_features, check_int16_matrix, check_labels, check_targets
from .device import Device, GoldenDevice

__all__ = ["Accelerator", "MLP", "BACKENDS"]

def _golden(soc, **kwargs):
    if kwargs:
        raise TypeError(f"The golden backend takes no options, not {sorted(kwargs)}")
    return GoldenDevice(soc)


def _pysim(soc, **kwargs):
    from .backends import PysimDevice
    return PysimDevice(soc, **kwargs)


def _rtl_sim(soc, **kwargs):
    from .backends import RtlSimDevice
    return RtlSimDevice(soc, **kwargs)


def _board(soc, port=None, **kwargs):
    # the SoC on a board over the host link (firmware/board.py: BoardDevice(port_or_transport,
    # soc)); imported only when asked for, as it needs pyserial
    if port is None:
        raise TypeError("The board backend needs port= (a serial port name or a transport)")
    from .board import BoardDevice
    return BoardDevice(port, soc, **kwargs)


#: Backends :class:`Accelerator` can make by name: name → factory ``(soc, **options)``.
BACKENDS = {"golden": _golden, "pysim": _pysim, "rtl-sim": _rtl_sim, "board": _board}


class Accelerator:
    """The accelerator behind a device.

    Parameters
    ----------
    backend : str or Device
        A name of :data:`BACKENDS` — ``"golden"`` (the golden instruction-level model),
        ``"pysim"`` (the SoC in Amaranth's simulator, :class:`firmware.backends.PysimDevice`),
        ``"rtl-sim"`` (the SoC in the compiled simulator,
        :class:`firmware.backends.RtlSimDevice`), ``"board"`` (a board over the host link,
        ``port=`` required) — or a :class:`~firmware.device.Device`.
    soc : SocConfig, optional
        Configuration of a backend made by name (default :data:`spec.soc.DEFAULT_SOC`).
    max_cycles : int, optional
        The cycle budget of every run (``None``: the device's default,
        :data:`firmware.device.DEFAULT_MAX_CYCLES` on the golden model and the simulators). A
        run that exceeds it ends in :class:`~firmware.device.DeviceTimeout` naming it.
    **options
        Passed to the backend's device (e.g. ``cache_dir`` for ``"rtl-sim"``, ``port`` for
        ``"board"``).

    Members
    -------
    device : Device
    max_cycles : int or None
        The budget passed to every run (assign to change it).
    last_cycles : int or None
        Device cycles of the last :meth:`matmul` call or :class:`MLP` method (all its runs).
    last_instructions : int or None
        Instructions issued in that call.

    Raises
    ------
    TypeError
        If ``backend`` or ``soc`` has the wrong type.
    ValueError
        If ``backend`` names a backend that is not available.
    """

    def __init__(self, backend="golden", soc=None, *, max_cycles=None, **options):
        if soc is not None and not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        if max_cycles is not None:
            check_positive_int(max_cycles, "Cycle budget")
        if isinstance(backend, Device):
            if soc is not None and soc != backend.config:
                raise ValueError("SoC configuration does not match the device's")
            if options:
                raise TypeError(f"Options {sorted(options)} are for backends made by name")
            self.device = backend
        elif isinstance(backend, str):
            if backend not in BACKENDS:
                raise ValueError(f"Unknown backend {backend!r} (available: "
                                 f"{', '.join(map(repr, BACKENDS))})")
            self.device = BACKENDS[backend](soc if soc is not None else DEFAULT_SOC, **options)
        else:
            raise TypeError(f"Backend must be a backend name or a Device, not {backend!r}")
        self.max_cycles = max_cycles
        self.last_cycles = None
        self.last_instructions = None
        self._owner = None

    @property
    def soc(self):
        return self.device.config

    # --- running ---------------------------------------------------------------------------------
    def _claim(self, owner):
        """Make ``owner`` the user of main memory; True if it was someone else's."""
        changed = self._owner is not owner
        self._owner = owner
        return changed

    def release_memory(self):
        """No network owns main memory any more: the next one to run writes its programs,
        constants and weights again. For code that wrote main memory behind the networks'
        backs (a standalone image, ``firmware/standalone.py``)."""
        self._claim(None)

    def _run(self, entry):
        r = self.device.run(entry, self.max_cycles)
        self._cycles += r.cycles
        self._instructions += r.instructions
        self.last_cycles, self.last_instructions = self._cycles, self._instructions
        return r

    def _begin(self):
        self._cycles = self._instructions = 0
        self.last_cycles = self.last_instructions = 0

    # --- matrix product --------------------------------------------------------------------------
    def matmul(self, a, b, shift=0, rounding="nearest-even", seed=1):
        """``sat16(round(a @ b / 2**shift))`` on the device, for int16 matrices of any shape.

        The product is tiled into ``GEMM`` and ``REQ`` instructions. Sums accumulate in the
        array's 32-bit accumulators, which **wrap**: a dot product beyond ``±2**31`` is taken
        modulo ``2**32`` before the shift (no saturation there). Rounding is to nearest, ties to
        even, or ``"stochastic"`` (the generator seeded with ``seed``; draws in tile order).
        The result saturates to int16.

        Parameters
        ----------
        a, b : numpy.ndarray
            Integer arrays of shapes (M, K) and (K, N), values in the int16 range.
        shift : int
            ``0 .. 32``.
        rounding : str
        seed : int
            Stochastic rounding's seed, ``1 .. 2**32 − 1``.

        Returns
        -------
        numpy.ndarray
            ``int16`` (M, N).
        """
        a, b = check_int16_matrix(a, "A"), check_int16_matrix(b, "B")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"Inner dimensions do not match: A {a.shape}, B {b.shape}")
        check_int(seed, "Seed")
        if not 0 < seed < (1 << 32):
            raise ValueError(f"Seed must be in 1..2**32-1, not {seed!r}")
        (m, k), n = a.shape, b.shape[1]
        cm = compile_matmul(m, k, n, shift, rounding, self.soc,
                            seed=seed if rounding == "stochastic" else None)
        self.release_memory()
        self._begin()
        self.device.load_program(0, cm.program)
        self.device.write_words(cm.a_addr, cm.pack_a(a))
        self.device.write_words(cm.b_addr, cm.pack_b(b))
        self._run(0)
        return cm.unpack_c(self.device.read_int16(cm.c_addr, cm.c_words)).astype(np.int16)

    # --- networks --------------------------------------------------------------------------------
    def mlp(self, sizes, **kwargs):
        """A new :class:`MLP` on this accelerator (keyword arguments as :class:`MLP`)."""
        return MLP(self, sizes, **kwargs)


class MLP:
    """A fully connected network trained and run on the accelerator.

    The numerics are the golden trainer's (:class:`golden.mlp.FixedMLP`, ``docs/training.md``):
    the device computes the same operations, and with ``update_lanes`` equal to the lane count
    the same random draws, so a run equals ``FixedMLP.train`` bit for bit.

    Parameters
    ----------
    accelerator : Accelerator
    sizes : sequence of int
        ``(D, H_1, ..., C)``.
    formats : Formats
    batch : int
        SGD batch (a power of two); also the block size of inference.
    rounding : str
        Rounding of the weight update.
    temperature : float, optional
        Softmax temperature (loss and :meth:`probs`).
    seed : int
        Initialisation (:func:`golden.mlp.init_float_params`), batch order and stochastic
        rounding seed (:func:`golden.mlp.rng_seed`), as the golden trainer's run seed. The
        generator lives in the device and is seeded at the first :meth:`fit`: networks that
        interleave their training on one accelerator share it.
    train : bool
        Compile the training program (False: an inference-only network, e.g. a teacher trained
        elsewhere; it needs less scratchpad, and :meth:`fit` is refused).
    select : bool
        Compile the teacher-labeling programs (:meth:`label_select`; needs the SoC's selector
        with as many classes as the network).
    validate : bool
        Compile the ``valacc`` program (:meth:`count_correct`: accuracy counted on the device).

    Members
    -------
    compiled : firmware.compiler.CompiledMLP
    weights : list of numpy.ndarray
        ``int64`` augmented weight matrices ``(n_in + 1, n_out)`` (weight format; last row the
        bias). Assign to replace them.
    steps : int
        SGD steps run so far.
    last_step_cycles : float or None
        Device cycles per step of the last :meth:`fit`.
    """

    def __init__(self, accelerator, sizes, *, formats=DEFAULT_FORMATS, batch=32,
                 rounding="stochastic", temperature=None, seed=0, train=True, select=False,
                 validate=False):
        from golden.mlp import FixedMLP, init_float_params
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"Accelerator must be an Accelerator, not {accelerator!r}")
        check_int(seed, "Seed")
        if seed < 0:
            raise ValueError(f"Seed must be a non-negative integer, not {seed!r}")
        self.acc = accelerator
        self.desc = MLPDescription(tuple(sizes), formats, batch, 2**-3, rounding, temperature)
        kinds = (("train",) if train else ()) + ("logits", "probs") + \
            (("select",) if select else ()) + (("valacc",) if validate else ())
        self.compiled = compile_mlp(self.desc, accelerator.soc, kinds)
        self.seed = seed
        self._ref = FixedMLP(self.desc.sizes, formats=formats)      # formats and conversions
        self._ref.load_float(init_float_params(self.desc.sizes, seed))
        self._weights = [p.numpy().copy() for p in self._ref.params]
        self._train_lr = None
        self._seeded = False
        self.steps = 0
        self.last_step_cycles = None

    # --- weights ---------------------------------------------------------------------------------
    @property
    def weights(self):
        return [w.copy() for w in self._weights]

    @weights.setter
    def weights(self, params):
        fmt = self.desc.formats.weight
        if len(params) != len(self._weights):
            raise ValueError(f"Expected {len(self._weights)} weight matrices, not {len(params)}")
        new = []
        for l, (p, cur) in enumerate(zip(params, self._weights), 1):
            p = np.asarray(p)
            if p.shape != cur.shape:
                raise ValueError(f"Layer {l} weights must have shape {cur.shape}, not {p.shape}")
            if not np.issubdtype(p.dtype, np.integer):
                raise TypeError(f"Layer {l} weights must be integers (weight format)")
            if p.size and (p.min() < fmt.min or p.max() > fmt.max):
                raise ValueError(f"Layer {l} weights must be {fmt.width}-bit values")
            new.append(p.astype(np.int64))
        self._weights = new
        if self.acc._owner is self:
            self._write_weights()

    def load_float(self, params):
        """Set the weights from real-valued augmented matrices (quantized half to even)."""
        self._ref.load_float(params)
        self.weights = [p.numpy() for p in self._ref.params]
        return self

    def float_params(self):
        """The weights as real numbers (``float64`` arrays)."""
        scale = self.desc.formats.weight.scale
        return [w / scale for w in self._weights]

    # --- device memory ---------------------------------------------------------------------------
    def _write_weights(self):
        for l, w in enumerate(self._weights, 1):
            self.acc.device.write_words(self.compiled.regions[f"W{l}"].addr, w)

    def _read_weights(self):
        for l, w in enumerate(self._weights, 1):
            r = self.compiled.regions[f"W{l}"]
            w[...] = self.acc.device.read_int16(r.addr, w.size).reshape(w.shape)

    def _ensure(self, train_lr=None):
        """Own the device: programs and weights in main memory."""
        dev, cm = self.acc.device, self.compiled
        if self.acc._claim(self):
            for kind, prog in cm.programs.items():
                if kind != "train":
                    dev.load_program(prog.base, prog)
            for addr, words in cm.constants():
                dev.write_words(addr, words)
            self._write_weights()
            self._train_lr = None
        if train_lr is not None and train_lr != self._train_lr:
            p = cm.train_program(train_lr)
            dev.load_program(p.base, p)
            self._train_lr = train_lr

    def _set_params(self, steps, data, out=0, first_id=0):
        words = []
        for v in (steps, data, out, first_id):
            words += [v & 0xFFFF, v >> 16]
        self.acc.device.write_words(PARAM_STEPS, words)
        assert PARAM_DATA == 2 and PARAM_OUT == 4 and PARAM_ID == 6

    # --- data ------------------------------------------------------------------------------------
    def _inputs(self, X):
        """Act-format inputs with the ones column, ``int64`` (N, D + 1) (``X`` checked)."""
        xq = self._ref.quantize_inputs(check_features(X, self.desc.sizes[0])).numpy()
        ones = np.full((xq.shape[0], 1), self.desc.formats.act.scale, dtype=np.int64)
        return np.concatenate([xq, ones], axis=1)

    # --- training --------------------------------------------------------------------------------
    def fit(self, X, y, steps=None, lr=2**-3, *, schedule=None, callback=None):
        """Train with SGD on the device, as :meth:`golden.mlp.FixedMLP.train`.

        Parameters
        ----------
        X : tensor or array (N, D)
            Inputs: floats (quantized to the act format) or act-format integers.
        y : tensor or array
            Labels (N,) or soft targets (N, C) (:meth:`golden.mlp.FixedMLP.targets`).
        steps : int
            SGD steps at learning rate ``lr`` (or give ``schedule``).
        lr : float
        schedule : sequence of (steps, lr), optional
            Phases run one after the other; the batch order
            (:func:`golden.data.batch_order` with the network's seed) runs over all of them.
        callback : callable, optional
            Called with the number of steps of each device run after it (at most
            ``compiled.train_capacity``). It may run inference on this network (e.g. evaluate
            it: the device holds the current weights); its runs do not count in
            :attr:`Accelerator.last_cycles` of the fit.

        Returns
        -------
        MLP
            ``self``.
        """
        from golden.data import batch_order
        from golden.mlp import check_schedule, rng_seed
        if "train" not in self.compiled.kinds:
            raise ValueError("This network was built without a training program (train=False)")
        if schedule is None:
            if steps is None:
                raise TypeError("Give steps (with lr) or a schedule")
            schedule = [(steps, lr)]
        elif steps is not None:
            raise TypeError("Give either steps or a schedule, not both")
        schedule = check_schedule(schedule)
        for _, phase_lr in schedule:
            self.desc.with_lr(phase_lr)             # validates the rate for these formats
        xa = self._inputs(X)
        t = self._ref.targets(check_targets(y, xa.shape[0], self.desc.sizes[-1])).numpy()
        total = sum(s for s, _ in schedule)
        self.acc._begin()
        if total == 0:
            return self
        order = batch_order(xa.shape[0], self.desc.batch, total, self.seed).numpy()
        cm, dev = self.compiled, self.acc.device
        data = cm.regions["data"].addr
        i = 0
        for steps_, phase_lr in schedule:
            end = i + steps_
            while i < end:
                n = min(end - i, cm.train_capacity)
                self._ensure(train_lr=phase_lr)
                if not self._seeded:
                    p = cm.seed_program(rng_seed(self.seed))
                    dev.load_program(p.base, p)
                    self.acc._run(p.base)
                    self._seeded = True
                idx = order[i:i + n]                                  # (n, B)
                dev.write_words(data, cm.pack_steps(xa[idx], t[idx]))
                self._set_params(n, data)
                self.acc._run(cm.programs["train"].base)
                i += n
                if callback is not None:
                    saved = self.acc._cycles, self.acc._instructions
                    callback(n)
                    if self.acc._owner is not self:
                        raise RuntimeError("A fit callback must not use another network")
                    self.acc._cycles, self.acc._instructions = saved
                    self.acc.last_cycles, self.acc.last_instructions = saved
        self._read_weights()
        self.steps += total
        self.last_step_cycles = self.acc.last_cycles / total
        return self

    # --- inference -------------------------------------------------------------------------------
    def _forward(self, X, kind):
        cm, dev, B = self.compiled, self.acc.device, self.desc.batch
        xa = self._inputs(X)
        n, C = xa.shape[0], self.desc.sizes[-1]
        self.acc._begin()
        out = np.zeros((n, C), dtype=np.int64)
        if n == 0:
            return out
        self._ensure()
        per_run = cm.eval_capacity * B
        for s0 in range(0, n, per_run):
            chunk = xa[s0:s0 + per_run]
            blocks = -(-chunk.shape[0] // B)
            pad = np.zeros((blocks * B, chunk.shape[1]), dtype=np.int64)
            pad[:chunk.shape[0]] = chunk
            x_addr, o_addr = cm.eval_layout(blocks)
            dev.write_words(x_addr, cm.pack_inputs(pad))
            self._set_params(blocks, x_addr, o_addr)
            self.acc._run(cm.programs[kind].base)
            res = dev.read_int16(o_addr, blocks * B * C).reshape(blocks * B, C)
            out[s0:s0 + chunk.shape[0]] = res[:chunk.shape[0]]
        return out

    def label_select(self, X, *, progress=None, clear=True, first_id=0):
        """Teacher labeling on the device: the network's probabilities of every sample of ``X``
        stream into the SoC's balanced selector (``SELCLR``, then ``SELFEED`` per sample panel
        of each block, sample ids ``first_id .. first_id + N − 1`` in order, then ``SELOUT``).

        Parameters
        ----------
        X : tensor or array (N, D)
        progress : callable, optional
            Called with the number of samples labeled after each run.
        clear : bool
            Empty the selector first (``False``: continue the selection the previous calls
            left in the SoC, e.g. the next chunk of a stream; the result is the selection
            of every sample fed since the last clear).
        first_id : int
            Sample id of ``X[0]`` (a chunk's position in the stream).

        Returns
        -------
        tuple of tuple of (int, int)
            ``per_class[c]``: the ``(sample id, score)`` pairs the selector kept for class ``c``,
            in rank order (score: the probability in the prob format); the pseudo-label of a
            sample is its class. Equals :func:`golden.selection.select_offline` of the
            device's probabilities.

        Raises
        ------
        ValueError
            If the network was built without ``select=True``, or ``N`` exceeds the selector's
            sample ids.
        """
        from spec import isa
        cm, dev, B = self.compiled, self.acc.device, self.desc.batch
        if "select" not in cm.kinds:
            raise ValueError("This network was built without teacher-labeling programs "
                             "(select=False)")
        sel = self.acc.soc.selector
        xa = self._inputs(X)
        n = xa.shape[0]
        check_int(first_id, "First sample id")
        if first_id < 0:
            raise ValueError(f"First sample id must be non-negative, not {first_id!r}")
        if first_id + n > 1 << sel.id_width:
            raise ValueError(f"{n} samples from id {first_id} exceed the selector's "
                             f"{sel.id_width}-bit sample ids")
        self.acc._begin()
        self._ensure()
        if clear:
            self.acc._run(cm.programs["selclr"].base)
        per_run = cm.eval_capacity * B
        full_program = True
        for s0 in range(0, n, per_run):
            chunk = xa[s0:s0 + per_run]
            blocks = -(-chunk.shape[0] // B)
            pad = np.zeros((blocks * B, chunk.shape[1]), dtype=np.int64)
            pad[:chunk.shape[0]] = chunk
            x_addr, _ = cm.eval_layout(blocks)
            dev.write_words(x_addr, cm.pack_inputs(pad))
            full = chunk.shape[0] // B
            if full:
                if not full_program:
                    dev.load_program(cm.programs["select"].base, cm.programs["select"])
                    full_program = True
                self._set_params(full, x_addr, first_id=first_id + s0)
                self.acc._run(cm.programs["select"].base)
            tail = chunk.shape[0] - full * B
            if tail:
                p = cm.select_program(tail)
                dev.load_program(p.base, p)
                full_program = False
                self._set_params(1, x_addr + full * cm.block_words,
                                 first_id=first_id + s0 + full * B)
                self.acc._run(p.base)
            if progress is not None:
                progress(chunk.shape[0])
        if not full_program:
            dev.load_program(cm.programs["select"].base, cm.programs["select"])
        out = cm.regions["data"].addr
        self._set_params(0, 0, out)
        self.acc._run(cm.programs["selout"].base)
        words = dev.read_words(out, cm.select_out_words())
        return isa.sel_out_unpack(words, sel, self.desc.formats.width)

    def count_correct(self, X, y):
        """The number of samples of ``X`` whose predicted class (:meth:`predict`'s rule) is
        ``y``, counted on the device by the ``valacc`` program (forward, argmax and compare
        all in one run; the host reads one word).

        Raises
        ------
        ValueError
            If the network was built without ``validate=True``, or the samples do not fit
            one run.
        """
        cm, dev, B = self.compiled, self.acc.device, self.desc.batch
        if "valacc" not in cm.kinds:
            raise ValueError("This network was built without the valacc program "
                             "(validate=False)")
        xa = self._inputs(X)
        n = xa.shape[0]
        y = check_labels(y, n, self.desc.sizes[-1])
        blocks = -(-n // B)
        x_addr, o_addr = cm.eval_layout(blocks)
        if n == 0 or o_addr + cm.validation_words(blocks) > cm.regions["data"].end:
            raise ValueError(f"{n} validation samples do not fit one valacc run")
        pad = np.zeros((blocks * B, xa.shape[1]), dtype=np.int64)
        pad[:n] = xa
        labels = np.full(blocks * B, -1, dtype=np.int64)
        labels[:n] = y
        self.acc._begin()
        self._ensure()
        dev.write_words(x_addr, cm.pack_inputs(pad))
        dev.write_words(o_addr, cm.pack_validation(labels))
        self._set_params(blocks, x_addr, o_addr)
        self.acc._run(cm.programs["valacc"].base)
        lo, hi = (int(w) for w in dev.read_words(PARAM_ID, 2))
        return lo | hi << 16

    def logits(self, X):
        """Logits (act-format integers, ``int64`` (N, C)) computed on the device."""
        return self._forward(X, "logits")

    def probs(self, X):
        """Softmax probabilities (prob-format integers, ``int64`` (N, C)) from the device's
        ``SMX`` (the teacher's scores)."""
        return self._forward(X, "probs")

    def predict(self, X):
        """Predicted classes: the first index of the largest logit (``int64`` (N,))."""
        z = self.logits(X)
        return z.argmax(axis=1) if z.size else np.zeros(0, dtype=np.int64)

    def evaluate(self, X, y):
        """Accuracy (fraction in [0, 1]) of :meth:`predict` against labels ``y`` (``NaN`` for
        no samples).

        Raises
        ------
        TypeError, ValueError
            If ``X`` is not (N, D) numbers or ``y`` not N integer labels in ``0 .. C − 1``
            (:mod:`firmware.checks`; a column of labels, (N, 1), is refused: it would
            broadcast).
        """
        X = check_features(X, self.desc.sizes[0])
        y = check_labels(y, X.shape[0], self.desc.sizes[-1])
        if y.size == 0:
            return float("nan")
        return float((self.predict(X) == y).mean())
