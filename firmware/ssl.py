"""``python -m firmware ssl``: the teacher/student semi-supervised pipeline on the accelerator.

The recipe of Yalniz et al. (2019), every phase but the offline teacher on the device:

1. **data** — scikit-learn's digits, or ``--dataset PATH.npz`` (``X`` N×D in [0, 1] or
   ``uint8``, ``y`` labels 0..C−1; checked before anything runs); a seeded stratified 30 % test
   split; ``--labeled-fraction`` of the rest is labeled (L), the remainder is the unlabeled
   stream U (its labels are only used to report pseudo-label precision).
2. **teacher** — a larger MLP trained offline in float32 on L (Adam, dropout) and quantized, as
   a device would ship with a pretrained teacher; ``--teacher-on-device`` trains a teacher that
   fits the device's training program on the accelerator instead.
3. **label + select** — the teacher labels U on the device and the SoC's balanced selector
   (``SELCLR``/``SELFEED``/``SELOUT``) keeps, for every class, the K samples of U with the
   highest probability of it, each sample competing for its top-P classes.
4. **student-train** — the student trains on the selected set with the pseudo-labels; then
   **finetune** on L; both on the device (the teacher's programs and weights leave main memory
   for the student's: teacher and student share the array).
5. **evaluation** on the test set on the device after every phase; the supervised-only
   student (L only, same schedule) on the device; the float32 PyTorch pipeline on the host.

``--check`` co-runs the golden model: every program runs on both and the whole main memory is
compared after each; the first difference stops the run with the phase, the program and the
address. ``docs/pipeline.md`` describes the mapping and the measured figures.
"""

import json
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from spec.params import DEFAULT_FORMATS, check_positive_int
from spec.soc import DEFAULT_SOC
from .device import Device, RunResult

__all__ = ["Recipe", "DEFAULT_RECIPE", "prepare_data", "run_pipeline", "CheckedDevice",
           "CheckFailed", "add_arguments", "run", "board_clock_mhz"]

#: The board whose clock projects cycles to time.
BOARD = "ulx3s-85f"


@dataclass(frozen=True)
class Recipe:
    """The pipeline's networks and schedules.

    Attributes
    ----------
    teacher_hidden : tuple of int
        Hidden widths of the offline (float) teacher; it runs on the device for inference only.
        64-56-10 at dropout 0.3: the best of the teachers that fit the default SoC's
        scratchpads tried (93.2 % mean on digits' 10 % L, seeds 0–4, in float; 64-56-56-10
        at dropout 0.2: 92.0 %; the study's 64-256-128-10 does not fit, ``docs/pipeline.md``).
    teacher_steps, teacher_lr, teacher_weight_decay, teacher_dropout
        Its offline training: full-batch Adam steps, rate, weight decay, dropout.
    device_teacher_hidden : tuple of int
        Hidden widths of the ``--teacher-on-device`` teacher (it must fit the training
        program's scratchpad plan).
    device_teacher_batch : int
    device_teacher_schedule : tuple of (steps, lr)
        Its SGD schedule on L, on the device.
    student_hidden : tuple of int
    batch : int
        The students' SGD batch (and inference block).
    student_schedule : tuple of (steps, lr)
        SGD on the selected set.
    student_with_labeled : bool
        Student-train on the selected set and L together (L with its true labels).
    finetune_schedule : tuple of (steps, lr)
        SGD on L afterwards. The supervised-only student runs the study's schedule on L
        (:attr:`supervised_schedule`).
    supervised_schedule : tuple of (steps, lr)
        The supervised-only student's SGD on L: 3000 steps at 2⁻³, 1000 at 2⁻⁵ (the study's
        recipe, ``/work/shared/NUMERICS.md``).
    eval_every : int
        Evaluate the students on the test set about every this many steps (accuracy per epoch).
    """
    teacher_hidden: tuple = (56,)
    teacher_steps: int = 500
    teacher_lr: float = 1e-3
    teacher_weight_decay: float = 1e-4
    teacher_dropout: float = 0.3
    device_teacher_hidden: tuple = (48, 32)
    device_teacher_batch: int = 16
    device_teacher_schedule: tuple = ((3000, 2**-3), (1000, 2**-5))
    student_hidden: tuple = (32,)
    batch: int = 32
    student_schedule: tuple = ((3000, 2**-3),)
    student_with_labeled: bool = True
    supervised_schedule: tuple = ((3000, 2**-3), (1000, 2**-5))
    finetune_schedule: tuple = ((200, 2**-6),)
    eval_every: int = 500

    def scaled(self, fraction):
        """A copy with every device step count scaled by ``fraction`` (at least 1 step each): a
        quick run of the same pipeline (the offline teacher, cheap on the host, keeps its
        steps)."""
        def sc(schedule):
            return tuple((max(1, round(s * fraction)), lr) for s, lr in schedule)
        return replace(self, device_teacher_schedule=sc(self.device_teacher_schedule),
                       student_schedule=sc(self.student_schedule),
                       finetune_schedule=sc(self.finetune_schedule),
                       supervised_schedule=sc(self.supervised_schedule),
                       eval_every=max(1, round(self.eval_every * fraction)))


DEFAULT_RECIPE = Recipe()


def board_clock_mhz(board=BOARD):
    """The board's target clock (``platforms.boards``), MHz."""
    from platforms.boards import get_board
    return float(get_board(board).freq_mhz)


# ------------------------------------------------------------------------------------------------
# Data

@dataclass
class Data:
    """The pipeline's sets: ``labeled``, ``unlabeled`` (labels kept only for reporting),
    ``test`` (:class:`golden.data.Dataset`), and ``name``."""
    name: str
    labeled: object
    unlabeled: object
    test: object

    @property
    def num_classes(self):
        return self.test.num_classes

    @property
    def features(self):
        return self.test.features


def prepare_data(dataset=None, *, seed=0, labeled_fraction=0.1, test_fraction=0.3,
                 split_seed=0):
    """Load and split the data: digits (``dataset=None``) or an ``.npz`` file.

    The stratified test split is seeded with ``split_seed`` (fixed by default, so seeds compare
    on the same test set); the labeled part of the rest with ``seed``.

    Raises
    ------
    ValueError
        On a malformed file (:func:`golden.data.load_npz`), a bad fraction, or too few samples
        for every class to appear in the labeled set and the unlabeled stream.
    """
    from golden.data import load_digits, load_npz, stratified_indices
    for v, what in ((labeled_fraction, "Labeled fraction"), (test_fraction, "Test fraction")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{what} must be in (0, 1), not {v!r}")
    data = load_digits() if dataset is None else load_npz(dataset)
    name = "digits" if dataset is None else str(dataset)
    counts = torch.bincount(data.y, minlength=data.num_classes)
    empty = [c for c in range(data.num_classes) if counts[c] == 0]
    if empty:
        raise ValueError(f"{name}: class(es) {empty} have no samples (labels must be 0..C-1 "
                         f"with every class present)")
    test_idx, pool_idx = stratified_indices(data.y, test_fraction, split_seed, data.num_classes)
    pool, test = data.subset(pool_idx), data.subset(test_idx)
    lab_idx, unl_idx = stratified_indices(pool.y, labeled_fraction, seed, data.num_classes)
    labeled, unlabeled = pool.subset(lab_idx), pool.subset(unl_idx)
    for part, what in ((labeled, "labeled set"), (unlabeled, "unlabeled stream"),
                       (test, "test set")):
        missing = sorted(set(range(data.num_classes)) - set(part.y.tolist()))
        if missing:
            raise ValueError(f"{name}: too few samples: the {what} has no sample of class(es) "
                             f"{missing} (raise --labeled-fraction or use more data)")
    return Data(name, labeled, unlabeled, test)


def soc_for(num_classes, k=None, p=None, soc=DEFAULT_SOC):
    """``soc`` with a selector for ``num_classes`` classes (K, P default: the SoC's, K capped at
    what the unlabeled stream can offer is the caller's business)."""
    from spec.selection import SelectorConfig
    sel = soc.selector
    k = sel.k if k is None else k
    p = sel.p if p is None else p
    if (sel.classes, sel.k, sel.p) == (num_classes, k, p):
        return soc
    return replace(soc, selector=SelectorConfig(classes=num_classes, k=k, p=min(p, num_classes),
                                                id_width=sel.id_width))


# ------------------------------------------------------------------------------------------------
# --check: golden co-simulation

class CheckFailed(RuntimeError):
    """The device and the golden model differ after a program (``phase``, ``program``,
    ``address`` or ``None`` if the run results differ, ``what``)."""

    def __init__(self, phase, program, address, what):
        self.phase, self.program, self.address, self.what = phase, program, address, what
        where = f"word {address:#x}: " if address is not None else ""
        super().__init__(f"--check: first difference from golden in phase {phase!r}, program "
                         f"{program}: {where}{what}")


class CheckedDevice(Device):
    """A device run in lock step with the golden model (``--check``).

    Writes go to both; after every run the results (error, pc, cycles, instructions) and the
    whole main memory must be equal, else :class:`CheckFailed` names the phase
    (:attr:`phase`, set by the pipeline), the program (its name in :attr:`programs`, by entry
    address, else the address) and the first differing word.
    """

    def __init__(self, device, golden=None):
        from .device import GoldenDevice
        if not isinstance(device, Device):
            raise TypeError(f"Device must be a Device, not {device!r}")
        self.device = device
        self.golden = golden if golden is not None else GoldenDevice(device.config)
        self.phase = "setup"
        self.programs = {}
        self.checked_runs = 0

    @property
    def config(self):
        return self.device.config

    def _write(self, addr, words):
        self.device._write(addr, words)
        self.golden._write(addr, words)

    def _read(self, addr, n):
        return self.device._read(addr, n)

    def _run(self, entry, max_cycles):
        name = self.programs.get(entry, f"at {entry:#x}")
        try:
            r = self.device._run(entry, max_cycles)
        finally:
            g = self.golden._run(entry, max_cycles)
        for f in ("error", "pc", "cycles", "instructions", "dma_fault"):
            if getattr(r, f) != getattr(g, f):
                raise CheckFailed(self.phase, name, None,
                                  f"{f} {getattr(r, f)!r}, golden {getattr(g, f)!r}")
        n = self.config.mem_words
        a, b = self.device._read(0, n), self.golden._read(0, n)
        diff = np.flatnonzero(a != b)
        if diff.size:
            i = int(diff[0])
            raise CheckFailed(self.phase, name, i, f"{int(a[i]):#06x}, golden {int(b[i]):#06x} "
                                                   f"({diff.size} words differ)")
        self.checked_runs += 1
        return RunResult(r.error, r.pc, r.cycles, r.instructions, r.dma_fault)

    def counters(self):
        return self.device.counters()


# ------------------------------------------------------------------------------------------------
# The pipeline

class _Phases:
    """Per-phase figures, progress bars and device counters."""

    def __init__(self, acc, progress, checked):
        self.acc, self.progress, self.checked = acc, progress, checked
        self.rows = []

    def start(self, name, total, unit):
        from tqdm import tqdm
        if self.checked is not None:
            self.checked.phase = name
        self.bar = tqdm(total=total, desc=f"{name:<14}", unit=unit, file=sys.stderr,
                        disable=not self.progress, leave=True, dynamic_ncols=True)
        self.row = dict(phase=name, samples=0, cycles=0, busy=dict(dma=0, gemm=0, vec=0, sel=0),
                        wall_seconds=time.perf_counter())
        return self.row

    def finish(self, **figures):
        self.bar.close()
        self.row["wall_seconds"] = time.perf_counter() - self.row["wall_seconds"]
        self.row.update(figures)
        self.rows.append(self.row)
        return self.row


class _CountingDevice(Device):
    """Passes through to a device and sums the units' busy cycles of every run."""

    def __init__(self, device):
        self.device = device
        self.busy = dict(dma=0, gemm=0, vec=0, sel=0)
        self.cycles = 0

    @property
    def config(self):
        return self.device.config

    def _write(self, addr, words):
        self.device._write(addr, words)

    def _read(self, addr, n):
        return self.device._read(addr, n)

    def _run(self, entry, max_cycles):
        r = self.device._run(entry, max_cycles)
        c = self.device.counters()
        for u in self.busy:
            self.busy[u] += int(c.get(f"busy_{u}", 0))
        self.cycles += r.cycles
        return r

    def counters(self):
        return self.device.counters()


class _TrainerNet:
    """A student trained by the golden trainer (:class:`golden.mlp.FixedMLP`, draws in the
    device's panel order) instead of the device: bit-identical to :class:`firmware.MLP` on any
    backend (``tests/test_accelerator.py``), several times faster on the host than the golden
    device. Used by ``benchmarks.ssl``; no cycles, no per-epoch curve."""

    def __init__(self, sizes, batch, seed, lanes, temperature=None):
        from golden.mlp import FixedMLP, init_float_params, rng_seed
        self.net = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(
            init_float_params(sizes, seed))
        self.batch, self.seed, self.lanes = batch, seed, lanes
        self.temperature = temperature

    def fit(self, X, y, schedule, callback=None):
        self.net.train(X, y, schedule, batch=self.batch, seed=self.seed,
                       update_lanes=self.lanes, temperature=self.temperature)
        if callback is not None:
            callback(sum(s for s, _ in schedule))
        return self

    def evaluate(self, X, y):
        return self.net.accuracy(X, y)


def _names(checked, net, prefix):
    if checked is not None:
        checked.programs = {p.base: f"{prefix}.{kind}" for kind, p in
                            net.compiled.programs.items()}
        checked.programs[net.compiled.regions["seed"].addr] = f"{prefix}.seed"


def _standalone_phases(acc, measure, ph, evaluate, teacher, t_sizes, s_sizes, seed, data,
                       recipe, guard_margin, guard_samples, compare):
    """``run_pipeline(standalone=True)``'s phases: the image, then (``compare``) the same
    recipe host-driven; the final student evaluated on the test set."""
    from .standalone import run_host_driven, run_standalone
    L, U, T = data.labeled, data.unlabeled, data.test
    guard = None if guard_margin is None else (guard_margin, guard_samples)
    ph.start("standalone", 1, "image")
    r = measure(lambda: run_standalone(acc.device, teacher.weights, t_sizes, s_sizes, seed,
                                       U.X, L.X, L.y, recipe, guard=guard))
    ph.bar.update(1)
    acc._claim(None)                           # the image overwrote every network's memory
    student = acc.mlp(s_sizes, batch=recipe.batch, seed=seed)
    student.weights = r["weights"]
    a = evaluate(student, T.X, T.y)
    counts = [len(lst) for lst in r["per_class"]]
    out = dict(cycles=r["cycles"], instructions=r["instructions"], runs=r["counter"].runs,
               host_accesses_between_start_and_halt=r["counter"].between_runs(),
               rolled_back=r["rolled_back"], accuracy=a, class_counts=counts,
               per_class=r["per_class"], image_words=int(sum(len(w) for _, w in
                                                             r["image"].writes)))
    ph.finish(samples=len(U), accuracy=a, cycles=r["cycles"], selected=int(sum(counts)),
              note=f"one image, one run, {out['host_accesses_between_start_and_halt']} host "
                   f"accesses between start and halt"
                   + (f"; rolled back: {', '.join(r['rolled_back'])}" if r["rolled_back"]
                      else ""))
    if compare:
        ph.start("host-driven", 1, "recipe")
        h = measure(lambda: run_host_driven(acc, teacher.weights, t_sizes, s_sizes, seed, U.X,
                                            L.X, L.y, recipe, guard=guard))
        same = (h["per_class"] == r["per_class"] and h["rolled_back"] == r["rolled_back"]
                and all(np.array_equal(x, y) for x, y in zip(h["weights"], r["weights"])))
        out["equals_host_driven"] = bool(same)
        ph.finish(samples=len(U), accuracy=evaluate(h["student"], T.X, T.y),
                  note=f"the same recipe host-scheduled: {'bit-identical' if same else 'DIFFERS'}")
    return out


def _one_hot(y, classes, scale):
    t = torch.zeros(len(y), classes, dtype=torch.int64)
    t[torch.arange(len(y)), torch.as_tensor(y)] = scale
    return t


def _selected(per_class):
    ids = [sid for lst in per_class for sid, _ in lst]
    labels = [c for c, lst in enumerate(per_class) for _ in lst]
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def run_pipeline(data, *, backend="golden", soc=None, recipe=DEFAULT_RECIPE, seed=0,
                 teacher_on_device=False, check=False, progress=True, float_pipeline=True,
                 device=None, students="device", stream_chunks=None, kd=False, temperature=1.0,
                 kd_top=3, guard_margin=None, guard_samples=64, standalone=False,
                 compare_host_driven=True, **backend_options):
    """Run the whole pipeline; return a dict of every figure (``docs/pipeline.md``).

    Parameters
    ----------
    data : Data
        From :func:`prepare_data`.
    backend : str
        A name of :data:`firmware.accelerator.BACKENDS`.
    soc : SocConfig, optional
        Default: :data:`spec.soc.DEFAULT_SOC` with a selector for the data's classes.
    recipe : Recipe
    seed : int
        Initialisation, batch order and stochastic rounding of every network.
    teacher_on_device : bool
    check : bool
        Co-run the golden model (:class:`CheckedDevice`).
    progress : bool
        Progress bars on stderr.
    float_pipeline : bool
        Also run the float32 pipeline.
    device : Device, optional
        Use this device instead of making one for ``backend``.
    students : str
        ``"device"``; or ``"trainer"``: the students train on the host with the golden trainer,
        bit-identical to the device (:class:`_TrainerNet`; the benchmark's fast mode: the
        teacher still labels and selects on the device).
    stream_chunks : int, optional
        Online selection: the unlabeled stream arrives in this many chunks; the selector keeps
        its state across them (``label_select(clear=False)``); after every chunk a student is
        trained from its initialisation on the selection so far and finetuned (the last
        chunk's is the SSL student); ``result["stream"]`` has the accuracy after every chunk.
    kd : bool
        Distillation: the student trains on the teacher's soft labels at ``temperature``
        instead of the pseudo-labels (the top ``kd_top`` classes of each selected sample with
        their probabilities, :func:`golden.selection.soft_labels`), with the tempered softmax
        gradient (``SMX`` ``inv_temp``); ``result["kd"]``.
    temperature : float
    kd_top : int
    guard_margin : float, optional
        The divergence guard (:class:`firmware.guard.DivergenceGuard`) around the SSL
        student's phases with this margin; ``None``: no guard. ``result["guard"]``.
    guard_samples : int
        Size of the guard's validation slice (the first samples of L).
    standalone : bool
        Label, select, student-train and finetune (and the guard) as **one** program image
        run once (:mod:`firmware.standalone`; its batches come from fixed slots, so its
        student is that recipe's, not the host-driven default's); ``result["standalone"]``
        has its cycles, the host accesses between its start and halt (0) and, with
        ``compare_host_driven``, whether the host-driven run of the same recipe gives the same
        selection and weights bit for bit.
    compare_host_driven : bool

    Returns
    -------
    dict
    """
    from firmware.accelerator import Accelerator
    from golden.float_ref import FloatMLP, train_teacher
    from golden.mlp import init_float_params
    from golden.selection import select_offline, soft_labels, soft_targets
    t_start = time.perf_counter()
    if soc is None:
        soc = soc_for(data.num_classes)
    sel_cfg = soc.selector
    if sel_cfg is None or sel_cfg.classes != data.num_classes:
        raise ValueError(f"The SoC's selector must have {data.num_classes} classes")
    D, C = data.features, data.num_classes
    L, U, T = data.labeled, data.unlabeled, data.test
    if stream_chunks is not None:
        check_positive_int(stream_chunks, "Stream chunks")
        if stream_chunks > len(U):
            raise ValueError(f"Stream chunks must be at most the stream's {len(U)} samples, "
                             f"not {stream_chunks!r}")
    if kd:
        check_positive_int(kd_top, "Distillation top classes")
        if kd_top > C:
            raise ValueError(f"Distillation top classes must be at most {C}, not {kd_top!r}")
    if standalone and (kd or stream_chunks is not None):
        raise ValueError("--standalone runs the hard-label one-shot recipe: not with --kd or "
                         "--stream-chunks")
    guard = None                    # (standalone: the image's own guard, from guard_margin)
    if guard_margin is not None:
        from .guard import DivergenceGuard
        check_positive_int(guard_samples, "Guard validation samples")
        guard = DivergenceGuard(L.X[:guard_samples], L.y[:guard_samples], guard_margin)
    made = device is None
    if made:
        from firmware.accelerator import BACKENDS
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r} (available: "
                             f"{', '.join(map(repr, BACKENDS))})")
        if backend == "rtl-sim":
            # the compiled model's build reports what it does when the run shows progress
            backend_options.setdefault("progress", progress)
        device = BACKENDS[backend](soc, **backend_options)
    base_device = device
    checked = CheckedDevice(device) if check else None
    counting = _CountingDevice(checked if checked is not None else device)
    acc = Accelerator(counting)
    ph = _Phases(acc, progress, checked)
    clock = board_clock_mhz()
    student_sizes = (D,) + tuple(recipe.student_hidden) + (C,)
    student_fmt = DEFAULT_FORMATS
    B = recipe.batch

    def measure(fn):
        c0, b0 = counting.cycles, dict(counting.busy)
        out = fn()
        ph.row["cycles"] += counting.cycles - c0
        for u in counting.busy:
            ph.row["busy"][u] += counting.busy[u] - b0[u]
        return out

    def evaluate(net, X, y):
        return measure(lambda: net.evaluate(X, y))

    # --- teacher ---------------------------------------------------------------------------------
    if teacher_on_device:
        t_sizes = (D,) + tuple(recipe.device_teacher_hidden) + (C,)
        steps = sum(s for s, _ in recipe.device_teacher_schedule)
        ph.start("teacher", steps, "step")
        teacher = acc.mlp(t_sizes, batch=recipe.device_teacher_batch, seed=seed, select=True)
        _names(checked, teacher, "teacher")
        measure(lambda: teacher.fit(L.X, L.y, schedule=recipe.device_teacher_schedule,
                                    callback=lambda n: ph.bar.update(n)))
        where = "device (SGD)"
    else:
        t_sizes = (D,) + tuple(recipe.teacher_hidden) + (C,)
        ph.start("teacher", recipe.teacher_steps, "step")
        tf = train_teacher(t_sizes, L.X, L.y, steps=recipe.teacher_steps, lr=recipe.teacher_lr,
                           weight_decay=recipe.teacher_weight_decay,
                           dropout=recipe.teacher_dropout, seed=seed)
        ph.bar.update(recipe.teacher_steps)
        teacher = acc.mlp(t_sizes, batch=B, seed=seed, train=False, select=True)
        teacher.load_float([p.double() for p in tf.params()])
        _names(checked, teacher, "teacher")
        where = "host (float32 Adam), quantized"
    t_acc = evaluate(teacher, T.X, T.y)
    ph.finish(samples=len(L), accuracy=t_acc, note=f"{'-'.join(map(str, t_sizes))} on {where}")

    # --- label + select on the device (the whole stream, or chunk by chunk) -----------------------
    if students not in ("device", "trainer"):
        raise ValueError(f"Students must train on 'device' or 'trainer', not {students!r}")
    n_chunks = 1 if stream_chunks is None else stream_chunks
    bounds = np.linspace(0, len(U), n_chunks + 1).round().astype(int)
    tag = (lambda i: "") if stream_chunks is None else (lambda i: f" {i + 1}/{n_chunks}")
    kd_teacher = None
    if kd:
        # the same teacher at temperature T: its probabilities are the soft labels
        kd_teacher = acc.mlp(t_sizes, batch=B, seed=seed, train=False, temperature=temperature)
        kd_teacher.weights = teacher.weights

    def new_student(temp=None):
        if students == "trainer":
            return _TrainerNet(student_sizes, B, seed, soc.lanes, temperature=temp)
        return acc.mlp(student_sizes, batch=B, seed=seed, temperature=temp,
                       validate=guard is not None)

    curves = {"ssl": [], "supervised": []}

    def train_phase(name, net, X, y, schedule, curve, offset, guarded=True):
        steps = sum(s for s, _ in schedule)
        ph.start(name, steps, "step")
        guarding = guard is not None and guarded
        if students == "device":
            _names(checked, net, name.split("-")[0])
        marks = {"next": recipe.eval_every, "done": 0}

        def cb(n):
            ph.bar.update(n)
            marks["done"] += n
            if marks["done"] >= marks["next"] or marks["done"] == steps:
                a = net.evaluate(T.X, T.y)
                curve.append((offset + marks["done"], a))
                ph.bar.set_postfix(acc=f"{a:.3f}")
                while marks["next"] <= marks["done"]:
                    marks["next"] += recipe.eval_every
        ckpt = measure(lambda: guard.checkpoint(net, name)) if guarding else None
        measure(lambda: net.fit(X, y, schedule=schedule, callback=cb))
        note = "golden trainer (host)" if students == "trainer" else ""
        ev = measure(lambda: guard.check(net, ckpt)) if guarding else None
        if ev is not None and ev["rolled_back"]:
            note = (note + "; " if note else "") + (
                f"guard: validation {ev['before']:.1%} -> {ev['after']:.1%}, rolled back")
            a = evaluate(net, T.X, T.y)
        else:
            a = (curve[-1][1] if curve and curve[-1][0] == offset + steps
                 else evaluate(net, T.X, T.y))
        row = ph.finish(samples=int(X.shape[0]), accuracy=a, steps=steps, note=note)
        if ev is not None:
            row["guard"] = ev
        return row

    n_s = sum(s for s, _ in recipe.student_schedule)
    n_f = sum(s for s, _ in recipe.finetune_schedule)
    chunks = []
    standalone_res = None
    for i in range(0 if standalone else n_chunks):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        ph.start("label+select" + tag(i), hi - lo, "sample")
        per_class = measure(lambda: teacher.label_select(U.X[lo:hi], progress=ph.bar.update,
                                                         clear=i == 0, first_id=lo))
        ids, pseudo = _selected(per_class)
        if ids.size == 0:
            raise RuntimeError("The selector kept no sample")
        truth = U.y.numpy()[ids]
        precision = float((truth == pseudo).mean())
        counts = [len(lst) for lst in per_class]
        ph.finish(samples=hi - lo, selected=int(ids.size), precision=precision,
                  class_counts=counts,
                  note=f"K={sel_cfg.k} P={sel_cfg.p}: {ids.size} selected"
                       + (f" of the first {hi} of the stream" if stream_chunks else ""))

        # --- student on the selected set (hard or soft labels), then finetune on L -----------------
        Xs, ys, kd_info = U.X[ids], torch.as_tensor(pseudo), None
        if kd:
            ph.start("kd-labels" + tag(i), ids.size, "sample")
            probs = measure(lambda: kd_teacher.probs(Xs))
            cls, q = soft_labels(torch.as_tensor(probs), kd_top)
            ys = soft_targets(cls, q, C, student_fmt.prob.scale)
            kd_info = dict(temperature=temperature, top=kd_top,
                           soft_label_bytes=int(ids.size) * kd_top * 3,
                           dense_target_bytes=int(ids.size) * C * 2,
                           top1_agreement=float((cls[:, 0].numpy() == pseudo).mean()))
            ph.finish(samples=int(ids.size), note=f"teacher at T={temperature:g}, top-{kd_top} "
                                                   f"soft labels")
        if recipe.student_with_labeled:
            yl = L.y if not kd else _one_hot(L.y, C, student_fmt.prob.scale)
            Xs, ys = torch.cat([Xs, L.X]), torch.cat([ys, yl])
        student = new_student(temperature if kd else None)
        curve = curves["ssl"] if i == n_chunks - 1 else []
        r_s = train_phase("student-train" + tag(i), student, Xs, ys, recipe.student_schedule,
                          curve, 0)
        r_s.update(precision=precision, class_counts=counts)
        r_f = train_phase("finetune" + tag(i), student, L.X, L.y, recipe.finetune_schedule,
                          curve, n_s)
        chunks.append(dict(chunk=i + 1, seen=hi, selected=int(ids.size), precision=precision,
                           before_finetune_accuracy=r_s["accuracy"],
                           accuracy=r_f["accuracy"]))
    if standalone:
        standalone_res = _standalone_phases(acc, measure, ph, evaluate, teacher, t_sizes,
                                            student_sizes, seed, data, recipe, guard_margin,
                                            guard_samples, compare_host_driven)
        ssl_acc, pre_acc = standalone_res["accuracy"], None
        ids, pseudo = _selected(standalone_res.pop("per_class"))
        precision = float((U.y.numpy()[ids] == pseudo).mean())
        counts = standalone_res["class_counts"]
    else:
        ssl_acc, pre_acc = chunks[-1]["accuracy"], chunks[-1]["before_finetune_accuracy"]

    # --- supervised-only student ------------------------------------------------------------------
    supervised = new_student()
    train_phase("supervised", supervised, L.X, L.y, recipe.supervised_schedule,
                curves["supervised"], 0, guarded=False)
    sup_acc = ph.rows[-1]["accuracy"]

    # --- float32 pipeline -------------------------------------------------------------------------
    float_res = {}
    if float_pipeline:
        ph.start("float32", n_s + n_f + recipe.teacher_steps, "step")
        if teacher_on_device:
            tf = train_teacher(t_sizes, L.X, L.y, steps=recipe.teacher_steps,
                               lr=recipe.teacher_lr, weight_decay=recipe.teacher_weight_decay,
                               dropout=recipe.teacher_dropout, seed=seed)
        ph.bar.update(recipe.teacher_steps)
        with torch.no_grad():
            fp = torch.softmax(tf(U.X), dim=1)
        fsel = select_offline(fp, sel_cfg.k, sel_cfg.p)
        fids, flab = _selected(fsel.per_class)
        fnet = FloatMLP(student_sizes, init_float_params(student_sizes, seed))
        Xf, yf = U.X[fids], torch.as_tensor(flab)
        if recipe.student_with_labeled:
            Xf, yf = torch.cat([Xf, L.X]), torch.cat([yf, L.y])
        fnet.train_sgd(Xf, yf, recipe.student_schedule, batch=B, seed=seed)
        ph.bar.update(n_s)
        f_pre = fnet.accuracy(T.X, T.y)
        fnet.train_sgd(L.X, L.y, recipe.finetune_schedule, batch=B, seed=seed)
        ph.bar.update(n_f)
        f_acc = fnet.accuracy(T.X, T.y)
        float_res = dict(float_teacher_accuracy=tf.accuracy(T.X, T.y),
                         float_ssl_student_accuracy=f_acc,
                         float_student_before_finetune_accuracy=f_pre,
                         float_selected=int(fids.size),
                         float_precision=float((U.y.numpy()[fids] == flab).mean()))
        ph.finish(samples=int(fids.size), accuracy=f_acc, cycles=0,
                  note=f"host: teacher {float_res['float_teacher_accuracy']:.3f}, "
                       f"before finetune {f_pre:.3f}")

    total_cycles = counting.cycles
    result = dict(
        dataset=data.name, backend=backend if isinstance(backend, str) else type(backend).__name__,
        seed=seed, classes=C, features=D, labeled=len(L), unlabeled=len(U), test=len(T),
        array=f"{soc.config.array.rows}x{soc.config.array.cols}",
        selector=dict(classes=sel_cfg.classes, k=sel_cfg.k, p=sel_cfg.p),
        teacher_sizes=list(t_sizes), student_sizes=list(student_sizes),
        teacher_on_device=teacher_on_device, students=students,
        teacher_accuracy=t_acc, ssl_student_accuracy=ssl_acc,
        ssl_student_before_finetune_accuracy=pre_acc,
        supervised_student_accuracy=sup_acc,
        pseudo_label_precision=precision, selected=int(ids.size), class_counts=counts,
        total_cycles=total_cycles, clock_mhz=clock,
        projected_seconds=total_cycles / (clock * 1e6),
        busy={u: v for u, v in counting.busy.items()},
        curves={k: [list(p) for p in v] for k, v in curves.items()},
        phases=ph.rows, check=bool(check),
        checked_runs=checked.checked_runs if checked is not None else 0,
        **float_res,
    )
    if stream_chunks is not None:
        result["stream"] = chunks
    if standalone_res is not None:
        result["standalone"] = standalone_res
    if kd:
        result["kd"] = kd_info
    if guard is not None:
        result["guard"] = dict(margin=guard.margin, validation_samples=guard.size,
                               events=guard.events,
                               rollbacks=sum(e["rolled_back"] for e in guard.events))
    result["wall_seconds"] = time.perf_counter() - t_start
    close = getattr(base_device, "close", None)
    if made and close is not None:
        close()
    return result


# ------------------------------------------------------------------------------------------------
# Report

def format_table(res):
    """The final table (phase, samples, cycles, projected time, accuracy, precision, balance)."""
    clock = res["clock_mhz"]
    head = ("phase", "samples", "cycles", f"time @{clock:g} MHz", "accuracy",
            "pseudo-label prec.", "class balance")
    rows = []
    for r in res["phases"]:
        counts = r.get("class_counts")
        balance = (f"{min(counts)}..{max(counts)} per class" if counts else "")
        prec = f"{r['precision']:.1%}" if "precision" in r else ""
        accs = f"{r['accuracy']:.1%}" if "accuracy" in r else ""
        t = r["cycles"] / (clock * 1e6)
        rows.append((r["phase"], str(r["samples"]), f"{r['cycles']:,}",
                     f"{t * 1e3:.1f} ms" if r["cycles"] else "host", accs, prec, balance))
    rows.append(("total (device)", "", f"{res['total_cycles']:,}",
                 f"{res['projected_seconds'] * 1e3:.1f} ms", "", "", ""))
    gain = 100 * (res["ssl_student_accuracy"] - res["supervised_student_accuracy"])
    vs_float = (100 * (res["ssl_student_accuracy"] - res["float_ssl_student_accuracy"])
                if "float_ssl_student_accuracy" in res else None)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    lines += [
        "",
        f"teacher {res['teacher_accuracy']:.1%}   SSL student {res['ssl_student_accuracy']:.1%}   "
        f"supervised student {res['supervised_student_accuracy']:.1%}"
        + (f"   float32 SSL student {res['float_ssl_student_accuracy']:.1%}"
           if "float_ssl_student_accuracy" in res else ""),
        f"SSL gain over supervised: {gain:+.1f} points"
        + (f"; vs float32: {vs_float:+.1f} points" if vs_float is not None else ""),
        f"{res['dataset']}: {res['labeled']} labeled, {res['unlabeled']} unlabeled, "
        f"{res['test']} test; {res['array']} array on {res['backend']}; "
        f"wall {res['wall_seconds']:.1f} s"
        + (f"; --check: {res['checked_runs']} programs equal to golden" if res["check"] else ""),
    ]
    return "\n".join(lines)


def write_report(res, directory):
    """Plots (matplotlib, Agg): accuracy per phase and per epoch, the selected set's class
    balance, the array's utilization per phase. Returns the files written."""
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(directory, exist_ok=True)
    files = []

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in res["curves"].items():
        if pts:
            x, y = zip(*pts)
            a1.plot(x, [100 * v for v in y], marker=".", label=f"{name} student")
    n_s = next((r.get("steps", 0) for r in res["phases"]
                if r["phase"].startswith("student-train")), 0)
    a1.axvline(n_s, color="grey", ls=":", lw=1)
    if "float_ssl_student_accuracy" in res:
        a1.axhline(100 * res["float_ssl_student_accuracy"], color="k", ls="--", lw=1,
                   label="float32 SSL student")
    a1.axhline(100 * res["teacher_accuracy"], color="r", ls="--", lw=1, label="teacher")
    a1.set_xlabel("SGD steps")
    a1.set_ylabel("test accuracy (%)")
    a1.set_title("Accuracy per epoch (on the device)")
    a1.legend(fontsize=8)
    phases = [r for r in res["phases"] if "accuracy" in r]
    a2.bar([r["phase"] for r in phases], [100 * r["accuracy"] for r in phases])
    a2.set_ylim(max(0, min(100 * r["accuracy"] for r in phases) - 10), 100)
    a2.set_ylabel("test accuracy (%)")
    a2.set_title("Accuracy per phase")
    a2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    files.append(os.path.join(directory, "accuracy.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(res["classes"]), res["class_counts"])
    ax.axhline(res["selector"]["k"], color="k", ls="--", lw=1, label=f"K = {res['selector']['k']}")
    ax.set_xlabel("class")
    ax.set_ylabel("selected samples")
    ax.set_title(f"Selected set: {res['selected']} samples, precision "
                 f"{res['pseudo_label_precision']:.1%}")
    ax.legend()
    fig.tight_layout()
    files.append(os.path.join(directory, "class_balance.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    dev = [r for r in res["phases"] if r["cycles"]]
    units = ("dma", "gemm", "vec", "sel")
    x = np.arange(len(dev))
    for i, u in enumerate(units):
        ax.bar(x + (i - 1.5) * 0.2, [100 * r["busy"][u] / r["cycles"] for r in dev], 0.2,
               label=u.upper())
    ax.set_xticks(x, [r["phase"] for r in dev], rotation=20)
    ax.set_ylabel("busy (% of the phase's cycles)")
    ax.set_title("Array (GEMM) and unit utilization per phase")
    ax.legend()
    fig.tight_layout()
    files.append(os.path.join(directory, "utilization.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    files.append(os.path.join(directory, "results.json"))
    return files


# ------------------------------------------------------------------------------------------------
# Command line

def add_arguments(parser):
    parser.add_argument("--backend", default="rtl-sim",
                        choices=("golden", "pysim", "rtl-sim", "board"),
                        help="where the device phases run (default %(default)s)")
    parser.add_argument("--port", help="serial port of the board backend")
    parser.add_argument("--cxxflags", help="C++ flags of the rtl-sim model, e.g. \"-O0\" "
                                           "(default: the compiled simulator's, -O2)")
    parser.add_argument("--dataset", metavar="PATH.npz",
                        help="an .npz with X (N×D floats in [0, 1] or uint8) and y (N labels "
                             "0..C-1); default scikit-learn's digits")
    parser.add_argument("--labeled-fraction", type=float, default=0.1,
                        help="labeled fraction of the train pool (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--teacher-on-device", action="store_true",
                        help="train the teacher on the accelerator (default: offline in float)")
    parser.add_argument("--k", type=int, help="selected samples per class (default: the SoC's, "
                                               f"{DEFAULT_SOC.selector.k})")
    parser.add_argument("--p", type=int, help="classes each sample competes for (default: the "
                                               f"SoC's, {DEFAULT_SOC.selector.p})")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="scale every step count (a quick run; default %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="co-run the golden model; stop at the first memory difference")
    parser.add_argument("--no-float", action="store_true", help="skip the float32 pipeline")
    parser.add_argument("--stream-chunks", type=int, metavar="N",
                        help="online selection: the unlabeled stream arrives in N chunks, the "
                             "selector keeps its state, a student after every chunk")
    parser.add_argument("--kd", action="store_true",
                        help="distillation: the student trains on the teacher's soft labels")
    parser.add_argument("--temperature", type=float,
                        help="--kd's softmax temperature (default 1: the best of 1, 2, 4 "
                             "measured, docs/pipeline.md)")
    parser.add_argument("--kd-top", type=int,
                        help="--kd: classes kept per soft label (default 3)")
    parser.add_argument("--guard", type=float, metavar="MARGIN", nargs="?", const=0.05,
                        help="divergence guard: roll a phase back if the validation accuracy "
                             "drops by more than MARGIN (default 0.05 when given)")
    parser.add_argument("--guard-samples", type=int, default=64,
                        help="the guard's validation slice: the first N labeled samples "
                             "(default %(default)s)")
    parser.add_argument("--standalone", action="store_true",
                        help="label, select, train and finetune as one program image run once "
                             "(then the same recipe host-driven, compared bit for bit)")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--report", metavar="DIR", help="write plots and results.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    if not 0 < args.steps_scale <= 1:
        raise SystemExit(f"--steps-scale must be in (0, 1], not {args.steps_scale}")
    for flag, value in (("--temperature", args.temperature), ("--kd-top", args.kd_top)):
        if value is not None and not args.kd:
            print(f"error: {flag} is for --kd", file=sys.stderr)
            return 2
    try:
        data = prepare_data(args.dataset, seed=args.seed, labeled_fraction=args.labeled_fraction)
        soc = soc_for(data.num_classes, args.k, args.p)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    recipe = DEFAULT_RECIPE if args.steps_scale == 1 else DEFAULT_RECIPE.scaled(args.steps_scale)
    options = {}
    if args.backend == "board":
        options["port"] = args.port
    elif args.port:
        print("error: --port is for --backend board", file=sys.stderr)
        return 2
    if args.backend == "rtl-sim":
        if args.cxxflags:
            options["cxxflags"] = tuple(args.cxxflags.split())
    elif args.cxxflags:
        print("error: --cxxflags is for --backend rtl-sim", file=sys.stderr)
        return 2
    print(f"Semi-supervised pipeline on {args.backend}: {data.name}, {len(data.labeled)} "
          f"labeled / {len(data.unlabeled)} unlabeled / {len(data.test)} test, "
          f"{data.num_classes} classes, seed {args.seed}", file=sys.stderr, flush=True)
    try:
        res = run_pipeline(data, backend=args.backend, soc=soc, recipe=recipe, seed=args.seed,
                           teacher_on_device=args.teacher_on_device, check=args.check,
                           progress=not args.quiet, float_pipeline=not args.no_float,
                           stream_chunks=args.stream_chunks, kd=args.kd,
                           temperature=1.0 if args.temperature is None else args.temperature,
                           kd_top=3 if args.kd_top is None else args.kd_top,
                           guard_margin=args.guard, guard_samples=args.guard_samples,
                           standalone=args.standalone, **options)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.report:
        for path in write_report(res, args.report):
            print(f"wrote {path}", file=sys.stderr)
    return 0
