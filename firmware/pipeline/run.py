"""The whole pipeline (:func:`run_pipeline`): set up the devices, run the phases in order,
gather every figure."""

import time

import numpy as np

from . import phases
from .devices import CheckedDevice, CountingDevice
from .progress import Phases
from .recipe import Options

__all__ = ["run_pipeline"]


def run_pipeline(data, options=None, /, **keywords):
    """Run the whole pipeline; return a dict of every figure (``docs/pipeline.md``).

    Parameters
    ----------
    data : firmware.pipeline.data.Data
        From :func:`~firmware.pipeline.data.prepare_data`.
    options : firmware.pipeline.recipe.Options, optional
        How to run; or give its fields as keywords (any other keyword is a backend option,
        e.g. ``port=``).

    Returns
    -------
    dict
    """
    if options is None:
        options = Options.from_keywords(**keywords)
    elif keywords:
        raise TypeError("Give options or keywords, not both")
    t_start = time.perf_counter()
    st, close = _setup(data, options)
    o = st.options
    phases.teacher(st)
    if o.standalone:
        phases.standalone(st)
    else:
        phases.supervised(st)
        phases.gate(st)
        if st.gate["passed"] or not o.gate:
            n_chunks = 1 if o.stream_chunks is None else o.stream_chunks
            bounds = np.linspace(0, len(data.unlabeled), n_chunks + 1).round().astype(int)
            for i in range(n_chunks):
                phases.stream_chunk(st, i, bounds)
        phases.choose(st)
        if o.refit:
            phases.refit(st)
    if o.float_pipeline:
        phases.float32(st)
    result = _result(st)
    result["wall_seconds"] = time.perf_counter() - t_start
    if close is not None:
        close()
    return result


def _setup(data, o):
    """Check the options (:meth:`~firmware.pipeline.recipe.Options.check_for`: every option
    and every network the run compiles, before anything runs); make the device (unless
    given), the checked and counting devices, the accelerator, the guard. Returns the state
    and the made device's ``close`` (or ``None``)."""
    from ..accelerator import Accelerator, BACKENDS
    o = o.check_for(data)
    soc = o.soc
    guard = None                    # (standalone: the image's own guard, from guard_margin)
    if o.guard_margin is not None:
        from ..guard import DivergenceGuard
        V = data.validation
        guard = DivergenceGuard(V.X[:o.guard_samples], V.y[:o.guard_samples], o.guard_margin)
    device, close = o.device, None
    if device is None:
        backend_options = dict(o.backend_options)
        if o.backend == "rtl-sim":
            # the compiled model's build reports what it does when the run shows progress
            backend_options.setdefault("progress", o.progress)
        device = BACKENDS[o.backend](soc, **backend_options)
        close = getattr(device, "close", None)
    checked = CheckedDevice(device) if o.check else None
    counting = CountingDevice(checked if checked is not None else device)
    st = phases.State(
        data=data, options=o, soc=soc, acc=Accelerator(counting), counting=counting,
        checked=checked, phases=Phases(counting, o.progress, checked), guard=guard,
        student_sizes=(data.features,) + tuple(o.recipe.student_hidden) + (data.num_classes,))
    return st, close


def _result(st):
    """Every figure of the run, as :func:`run_pipeline` returns them."""
    from .report import board_clock_mhz
    o, data, sel = st.options, st.data, st.soc.selector
    ids, _, precision, counts = st.selection if st.selection is not None else (None,) * 4
    clock = board_clock_mhz()
    delivered = st.choice["delivered"]
    total_cycles = st.counting.cycles
    result = dict(
        dataset=data.name,
        backend=o.backend if isinstance(o.backend, str) else type(o.backend).__name__,
        seed=o.seed, classes=data.num_classes, features=data.features,
        labeled=len(data.labeled), validation=len(data.validation),
        unlabeled=len(data.unlabeled), test=len(data.test),
        array=f"{st.soc.config.array.rows}x{st.soc.config.array.cols}",
        selector=dict(classes=sel.classes, k=sel.k, p=sel.p),
        teacher_sizes=list(st.t_sizes), student_sizes=list(st.student_sizes),
        teacher_on_device=o.teacher_on_device, students=o.students,
        teacher_accuracy=st.t_acc, ssl_student_accuracy=st.ssl_acc,
        ssl_student_before_finetune_accuracy=st.pre_acc,
        supervised_student_accuracy=st.sup_acc,
        delivered=delivered,
        delivered_student_accuracy=st.ssl_acc if delivered == "ssl" else st.sup_acc,
        gate=st.gate, choice=st.choice, teacher_fit=st.teacher_fit, refit=st.refit,
        pseudo_label_precision=precision, selected=None if ids is None else int(ids.size),
        class_counts=counts,
        total_cycles=total_cycles, clock_mhz=clock,
        projected_seconds=total_cycles / (clock * 1e6),
        busy=dict(st.counting.busy),
        curves={k: [list(p) for p in v] for k, v in st.curves.items()},
        phases=st.phases.rows, check=bool(o.check),
        checked_runs=st.checked.checked_runs if st.checked is not None else 0,
        **st.float_res,
    )
    if o.stream_chunks is not None:
        result["stream"] = st.chunks
    if st.standalone is not None:
        result["standalone"] = st.standalone
    if o.kd:
        result["kd"] = st.kd_info
    if st.guard is not None:
        g = st.guard
        result["guard"] = dict(margin=g.margin, validation_samples=g.size, events=g.events,
                               rollbacks=sum(e["rolled_back"] for e in g.events))
    return result
