"""The pipeline's phases, each a function of the run's :class:`State`: the teacher, the
supervised-only student, the gate, label + select, the distillation labels, student-train and
finetune (one stream chunk), the delivered student's choice, the standalone image and the
float32 pipeline."""

from dataclasses import dataclass, field

import numpy as np
import torch

from spec.params import DEFAULT_FORMATS
from ..compiler import mlp_lanes
from ..standalone import GATE_SLACK, delivers_ssl, gate_passes, tie_delivers  # one rule each
from .trainer import TrainerNet

__all__ = ["State", "teacher", "supervised", "gate", "stream_chunk", "choose", "refit",
           "standalone", "float32", "GATE_SLACK"]



@dataclass
class State:
    """What the phases share: the inputs, the devices, and what each phase leaves for the
    next ones.

    Attributes
    ----------
    data : firmware.pipeline.data.Data
    options : firmware.pipeline.recipe.Options
    soc : SocConfig
    acc : firmware.Accelerator
        On :attr:`counting`.
    counting : firmware.pipeline.devices.CountingDevice
    checked : firmware.pipeline.devices.CheckedDevice or None
    phases : firmware.pipeline.progress.Phases
    guard : firmware.guard.DivergenceGuard or None
    student_sizes : tuple of int
    teacher, t_sizes, float_teacher, kd_teacher
        The teacher on the device, its sizes, the offline float teacher (``None`` if trained on
        the device), the teacher at the distillation temperature.
    curves : dict of str to list
        Test accuracy per step of the SSL and the supervised student.
    chunks : list of dict
        Per stream chunk: its selection and its student's accuracies.
    selection : tuple
        The SSL student's selection: ``(ids, pseudo-labels, precision, class counts)``.
    teacher_fit : dict
        The offline teacher's cross-validated choice (:func:`~.teacher.fit_teacher`).
    sup_net, ssl_net
        The supervised-only and the SSL student.
    gate, choice : dict
        The gate's counts and decision; the delivered student's choice.
    """
    data: object
    options: object
    soc: object
    acc: object
    counting: object
    checked: object
    phases: object
    guard: object
    student_sizes: tuple
    teacher: object = None
    t_sizes: tuple = None
    t_acc: float = None
    float_teacher: object = None
    kd_teacher: object = None
    teacher_fit: dict = None
    sup_net: object = None
    ssl_net: object = None
    gate: dict = None
    choice: dict = None
    refit: dict = None
    curves: dict = field(default_factory=lambda: {"ssl": [], "supervised": []})
    chunks: list = field(default_factory=list)
    selection: tuple = None
    kd_info: dict = None
    standalone: dict = None
    ssl_acc: float = None
    pre_acc: float = None
    sup_acc: float = None
    float_res: dict = field(default_factory=dict)

    @property
    def recipe(self):
        return self.options.recipe

    def name_programs(self, net, prefix):
        if self.checked is not None:
            self.checked.name_programs(net, prefix)

    def new_student(self, temperature=None):
        o, r = self.options, self.recipe
        if o.students == "trainer":
            # the device's panel width (min(rows, cols): soc.lanes on a square array)
            return TrainerNet(self.student_sizes, r.batch, o.seed, mlp_lanes(self.soc),
                              temperature=temperature)
        return self.acc.mlp(self.student_sizes, batch=r.batch, seed=o.seed,
                            temperature=temperature, validate=True)


def _selected(per_class):
    """``(ids, pseudo-labels)`` of a selection."""
    ids = [sid for lst in per_class for sid, _ in lst]
    labels = [c for c, lst in enumerate(per_class) for _ in lst]
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def _one_hot(y, classes, scale):
    t = torch.zeros(len(y), classes, dtype=torch.int64)
    t[torch.arange(len(y)), torch.as_tensor(y)] = scale
    return t


def teacher(st):
    """Train the teacher (offline in float and quantized, or on the device) and evaluate it;
    with ``kd``, also the same teacher at the distillation temperature."""
    o, r, ph, L, T = st.options, st.recipe, st.phases, st.data.labeled, st.data.test
    D, C = st.data.features, st.data.num_classes
    if o.teacher_on_device:
        st.t_sizes = (D,) + tuple(r.device_teacher_hidden) + (C,)
        ph.start("teacher", sum(s for s, _ in r.device_teacher_schedule), "step")
        net = st.acc.mlp(st.t_sizes, batch=r.device_teacher_batch, seed=o.seed, select=True,
                         validate=True)
        st.name_programs(net, "teacher")
        ph.measure(lambda: net.fit(L.X, L.y, schedule=r.device_teacher_schedule,
                                   callback=lambda n: ph.bar.update(n)))
        where = "device (SGD)"
    else:
        st.t_sizes = (D,) + tuple(r.teacher_hidden) + (C,)
        ph.start("teacher", 1, "fit")
        st.float_teacher = _train_float_teacher(st)
        ph.bar.update(1)
        net = st.acc.mlp(st.t_sizes, batch=r.batch, seed=o.seed, train=False, select=True,
                         validate=True)
        net.load_float([p.double() for p in st.float_teacher.params()])
        st.name_programs(net, "teacher")
        f = st.teacher_fit
        where = (f"host (float32 Adam, {f['steps']} steps, dropout {f['dropout']:g}, weight "
                 f"decay {f['weight_decay']:g}"
                 + (f"; {f['folds']}-fold CV {f['cv_accuracy']:.1%}" if f["folds"] else "")
                 + "), quantized")
    st.teacher = net
    st.t_acc = ph.evaluate(net, T.X, T.y)
    ph.finish(samples=len(L), accuracy=st.t_acc,
              note=f"{'-'.join(map(str, st.t_sizes))} on {where}")
    if o.kd:
        # the same teacher at temperature T: its probabilities are the soft labels
        st.kd_teacher = st.acc.mlp(st.t_sizes, batch=r.batch, seed=o.seed, train=False,
                                   temperature=o.temperature)
        st.kd_teacher.weights = net.weights


def _train_float_teacher(st):
    """The offline teacher (:func:`~.teacher.fit_teacher`: cross-validated on L); sets
    :attr:`State.teacher_fit`."""
    from .teacher import fit_teacher
    L = st.data.labeled
    sizes = (st.data.features, *st.recipe.teacher_hidden, st.data.num_classes)
    net, st.teacher_fit = fit_teacher(sizes, L.X, L.y, st.recipe, st.options.seed)
    return net


def train(st, name, net, X, y, schedule, curve, offset, guarded=True):
    """A student's SGD phase ``name`` (with the guard around it if ``guarded``), the test
    accuracy appended to ``curve`` about every ``eval_every`` steps. Returns its row."""
    o, ph, T = st.options, st.phases, st.data.test
    steps = sum(s for s, _ in schedule)
    ph.start(name, steps, "step")
    guard = st.guard if guarded else None
    if o.students == "device":
        st.name_programs(net, name.split("-")[0])
    every = st.recipe.eval_every
    marks = {"next": every, "done": 0}

    def evaluate_now(n):
        ph.bar.update(n)
        marks["done"] += n
        if marks["done"] >= marks["next"] or marks["done"] == steps:
            a = net.evaluate(T.X, T.y)
            curve.append((offset + marks["done"], a))
            ph.bar.set_postfix(acc=f"{a:.3f}")
            while marks["next"] <= marks["done"]:
                marks["next"] += every
    ckpt = ph.measure(lambda: guard.checkpoint(net, name)) if guard is not None else None
    ph.measure(lambda: net.fit(X, y, schedule=schedule, callback=evaluate_now))
    note = "golden trainer (host)" if o.students == "trainer" else ""
    ev = ph.measure(lambda: guard.check(net, ckpt)) if guard is not None else None
    if ev is not None and ev["rolled_back"]:
        note = (note + "; " if note else "") + (
            f"guard: validation {ev['before']:.1%} -> {ev['after']:.1%}, rolled back")
        a = ph.evaluate(net, T.X, T.y)
    else:
        a = (curve[-1][1] if curve and curve[-1][0] == offset + steps
             else ph.evaluate(net, T.X, T.y))
    row = ph.finish(samples=int(X.shape[0]), accuracy=a, steps=steps, note=note)
    if ev is not None:
        row["guard"] = ev
    return row


def _label_select(st, i, lo, hi, tag):
    """The teacher labels stream samples ``lo:hi`` into the selector (chunk ``i``); sets
    :attr:`State.selection`."""
    o, ph, U, sel = st.options, st.phases, st.data.unlabeled, st.soc.selector
    ph.start("label+select" + tag, hi - lo, "sample")
    per_class = ph.measure(lambda: st.teacher.label_select(U.X[lo:hi], progress=ph.bar.update,
                                                           clear=i == 0, first_id=lo))
    ids, pseudo = _selected(per_class)
    if ids.size == 0:
        raise RuntimeError("The selector kept no sample")
    precision = float((U.y.numpy()[ids] == pseudo).mean())
    counts = [len(lst) for lst in per_class]
    st.selection = ids, pseudo, precision, counts
    ph.finish(samples=hi - lo, selected=int(ids.size), precision=precision, class_counts=counts,
              note=f"K={sel.k} P={sel.p}: {ids.size} selected"
                   + (f" of the first {hi} of the stream" if o.stream_chunks else ""))


def _kd_labels(st, tag, Xs, ids, pseudo):
    """The distillation targets of the selected samples ``Xs``; sets :attr:`State.kd_info`."""
    from golden.selection import soft_labels, soft_targets
    o, ph, C = st.options, st.phases, st.data.num_classes
    ph.start("kd-labels" + tag, ids.size, "sample")
    probs = ph.measure(lambda: st.kd_teacher.probs(Xs))
    cls, q = soft_labels(torch.as_tensor(probs), o.kd_top)
    ys = soft_targets(cls, q, C, DEFAULT_FORMATS.prob.scale)
    st.kd_info = dict(temperature=o.temperature, top=o.kd_top,
                      soft_label_bytes=int(ids.size) * o.kd_top * 3,
                      dense_target_bytes=int(ids.size) * C * 2,
                      top1_agreement=float((cls[:, 0].numpy() == pseudo).mean()))
    ph.finish(samples=int(ids.size), note=f"teacher at T={o.temperature:g}, top-{o.kd_top} "
                                           f"soft labels")
    return ys


def stream_chunk(st, i, bounds):
    """Chunk ``i`` of the stream (the whole stream without ``stream_chunks``): label +
    select, the distillation labels, a student trained on the selection (and L), finetuned
    on L."""
    o, r, L, U = st.options, st.recipe, st.data.labeled, st.data.unlabeled
    n_chunks = len(bounds) - 1
    tag = "" if o.stream_chunks is None else f" {i + 1}/{n_chunks}"
    lo, hi = int(bounds[i]), int(bounds[i + 1])
    _label_select(st, i, lo, hi, tag)
    ids, pseudo, precision, counts = st.selection
    Xs, ys = U.X[ids], torch.as_tensor(pseudo)
    st.kd_info = None
    if o.kd:
        ys = _kd_labels(st, tag, Xs, ids, pseudo)
    if r.student_with_labeled:
        C = st.data.num_classes
        yl = L.y if not o.kd else _one_hot(L.y, C, DEFAULT_FORMATS.prob.scale)
        Xs, ys = torch.cat([Xs, L.X]), torch.cat([ys, yl])
    student = st.new_student(o.temperature if o.kd else None)
    curve = st.curves["ssl"] if i == n_chunks - 1 else []
    r_s = train(st, "student-train" + tag, student, Xs, ys, r.student_schedule, curve, 0)
    r_s.update(precision=precision, class_counts=counts)
    r_f = train(st, "finetune" + tag, student, L.X, L.y, r.finetune_schedule, curve,
                sum(s for s, _ in r.student_schedule))
    st.ssl_net = student
    st.chunks.append(dict(chunk=i + 1, seen=hi, selected=int(ids.size), precision=precision,
                          before_finetune_accuracy=r_s["accuracy"], accuracy=r_f["accuracy"]))
    st.ssl_acc, st.pre_acc = r_f["accuracy"], r_s["accuracy"]


def refit(st):
    """``Options.refit``: after the choice, both students (the supervised and the SSL one) run
    the finetune schedule once more on all of L — its training part and the validation set —
    so that the delivered student has seen every label; the decisions stand. Sets
    :attr:`State.refit` (the test accuracies before)."""
    V, L = st.data.validation, st.data.labeled
    X, y = torch.cat([L.X, V.X]), torch.cat([L.y, V.y])
    st.refit = dict(samples=len(y), supervised_before=st.sup_acc, ssl_before=st.ssl_acc)
    sched = st.recipe.finetune_schedule
    st.sup_acc = train(st, "refit supervised", st.sup_net, X, y, sched, [], 0,
                       guarded=False)["accuracy"]
    if st.ssl_net is not None:
        st.ssl_acc = train(st, "refit ssl", st.ssl_net, X, y, sched, [], 0,
                           guarded=False)["accuracy"]


def standalone(st):
    """The standalone image (the supervised student, the gate, label, select, train,
    finetune, the choice in one run), then (with ``compare_host_driven``) the same recipe
    host-driven; the delivered, supervised and SSL students evaluated on the test set. Sets
    :attr:`State.standalone`, the gate, the choice and the selection."""
    from ..standalone import run_host_driven, run_standalone
    o, r, ph, acc = st.options, st.recipe, st.phases, st.acc
    L, U, T, V = st.data.labeled, st.data.unlabeled, st.data.test, st.data.validation
    guard = None if o.guard_margin is None else (o.guard_margin, o.guard_samples)
    args = (st.teacher.weights, st.t_sizes, st.student_sizes, o.seed, U.X, L.X, L.y, r)
    ph.start("standalone", 1, "image")
    res = ph.measure(lambda: run_standalone(acc.device, *args, validation=(V.X, V.y),
                                            guard=guard))
    ph.bar.update(1)
    acc.release_memory()                       # the image overwrote every network's memory
    student = acc.mlp(st.student_sizes, batch=r.batch, seed=o.seed)

    def test_accuracy(weights):
        if weights is None:
            return None
        student.weights = weights
        return ph.evaluate(student, T.X, T.y)
    sup_acc = test_accuracy(res["supervised_weights"])
    ssl_acc = test_accuracy(res["ssl_weights"])
    a = ssl_acc if res["delivered"] == "ssl" else sup_acc
    counts = None if res["per_class"] is None else [len(lst) for lst in res["per_class"]]
    out = dict(cycles=res["cycles"], instructions=res["instructions"],
               runs=res["counter"].runs,
               host_accesses_between_start_and_halt=res["counter"].between_runs(),
               rolled_back=res["rolled_back"], accuracy=a, delivered=res["delivered"],
               gate_passed=res["gate_passed"], class_counts=counts,
               image_words=int(sum(len(w) for _, w in res["image"].writes)))
    ph.finish(samples=len(U), accuracy=a, cycles=res["cycles"],
              selected=None if counts is None else int(sum(counts)),
              note=f"one image, one run, {out['host_accesses_between_start_and_halt']} host "
                   f"accesses between start and halt; delivered {res['delivered']}"
                   + (f"; rolled back: {', '.join(res['rolled_back'])}" if res["rolled_back"]
                      else ""))
    if o.compare_host_driven:
        ph.start("host-driven", 1, "recipe")
        h = ph.measure(lambda: run_host_driven(acc, *args, validation=(V.X, V.y), guard=guard))
        out["equals_host_driven"] = _same_results(h, res)
        ph.finish(samples=len(U), accuracy=ph.evaluate(h["student"], T.X, T.y),
                  note=f"the same recipe host-scheduled: "
                       f"{'bit-identical' if out['equals_host_driven'] else 'DIFFERS'}")
    st.standalone = out
    st.sup_acc, st.ssl_acc, st.pre_acc = sup_acc, ssl_acc, None
    n = len(V)
    passed = res["gate_passed"]
    st.gate = dict(validation_samples=n, teacher_correct=res["teacher_correct"],
                   supervised_correct=res["supervised_correct"],
                   teacher_validation_accuracy=res["teacher_correct"] / n,
                   supervised_validation_accuracy=res["supervised_correct"] / n,
                   passed=passed, enforced=True, slack=GATE_SLACK,
                   decision=gate_decision(res["teacher_correct"], res["supervised_correct"]))
    ssl = res["ssl_correct"]
    why = ("the gate refused the teacher's labels: no SSL student" if ssl is None else
           f"validation: SSL {ssl}/{n}, supervised {res['supervised_correct']}/{n}")
    st.choice = dict(ssl_correct=ssl, supervised_correct=res["supervised_correct"],
                     validation_samples=n, delivered=res["delivered"], reason=why + " (on the "
                     "device, in the image)")
    if counts is not None:
        ids, pseudo = _selected(res["per_class"])
        st.selection = ids, pseudo, float((U.y.numpy()[ids] == pseudo).mean()), counts


def _same_results(h, s):
    """The host-driven and the standalone run agree bit for bit: selection, decisions,
    counts and every student's weights."""
    keys = ("per_class", "rolled_back", "teacher_correct", "supervised_correct", "ssl_correct",
            "gate_passed", "delivered")
    if any(h[k] != s[k] for k in keys):
        return False
    for k in ("weights", "supervised_weights", "ssl_weights"):
        if (h[k] is None) != (s[k] is None):
            return False
        if h[k] is not None and not all(np.array_equal(a, b) for a, b in zip(h[k], s[k])):
            return False
    return True


def supervised(st):
    """The supervised-only student: the study's schedule on L alone, no guard (trained first:
    the gate compares the teacher with it)."""
    L = st.data.labeled
    st.sup_net = st.new_student()
    row = train(st, "supervised", st.sup_net, L.X, L.y, st.recipe.supervised_schedule,
                st.curves["supervised"], 0, guarded=False)
    st.sup_acc = row["accuracy"]


def gate(st):
    """Before labeling: the teacher and the supervised-only student counted on the validation
    set (on the device); the teacher's labels are used unless it classifies more than
    :data:`GATE_SLACK` validation samples fewer correctly (``Options.gate`` False: they are
    used anyway, the decision reported). Sets :attr:`State.gate`."""
    from ..guard import count_correct
    ph, V = st.phases, st.data.validation
    ph.start("gate", len(V), "sample")
    t = ph.measure(lambda: count_correct(st.teacher, V.X, V.y))
    s = ph.measure(lambda: count_correct(st.sup_net, V.X, V.y))
    passed = gate_passes(t, s)
    decision = gate_decision(t, s, st.options.gate)
    st.gate = dict(validation_samples=len(V), teacher_correct=t, supervised_correct=s,
                   teacher_validation_accuracy=t / len(V),
                   supervised_validation_accuracy=s / len(V), passed=passed,
                   enforced=st.options.gate, slack=GATE_SLACK, decision=decision)
    ph.finish(samples=len(V), note=f"validation: teacher {t}/{len(V)}, supervised {s}/{len(V)}: "
                                   f"{decision}")


def gate_decision(t, s, enforced=True):
    """The gate's decision in words, for teacher and supervised validation counts ``t``,
    ``s``."""
    if t > s:
        return "pass: the teacher beats the supervised student, its labels are used"
    if gate_passes(t, s):
        return (f"pass: the teacher does not beat the supervised student but is within the "
                f"gate's slack ({GATE_SLACK} validation sample); its labels are used, the "
                f"choice decides")
    if enforced:
        return ("refused: the teacher does not beat the supervised student (it trails by more "
                "than the slack), no pseudo-labels")
    return "would refuse (gate off): the teacher trails the supervised student"


def choose(st):
    """After finetune: the SSL and the supervised-only student counted on the validation set
    (on the device); the one with more correct is delivered (a tie: :func:`tie_delivers`);
    without an SSL student (the gate refused the labels) the supervised one. Sets
    :attr:`State.choice`."""
    from ..guard import count_correct
    ph, V, g = st.phases, st.data.validation, st.gate
    ph.start("choice", len(V), "sample")
    sup = g["supervised_correct"]
    if st.ssl_net is None:
        ssl, delivered = None, "supervised"
        why = "the gate refused the teacher's labels: no SSL student"
    else:
        ssl = ph.measure(lambda: count_correct(st.ssl_net, V.X, V.y))
        delivered = "ssl" if delivers_ssl(ssl, sup, len(V)) else "supervised"
        why = (f"validation: SSL {ssl}/{len(V)}, supervised {sup}/{len(V)}"
               + (f" (a tie on {len(V)} samples delivers the {tie_delivers(len(V))} student)"
                  if ssl == sup else ""))
    acc = st.ssl_acc if delivered == "ssl" else st.sup_acc
    st.choice = dict(ssl_correct=ssl, supervised_correct=sup, validation_samples=len(V),
                     delivered=delivered, reason=why)
    ph.finish(samples=len(V), accuracy=acc, note=f"delivered: {delivered} student ({why})")


def float32(st):
    """The float32 pipeline on the host: the teacher, the offline selection, the student
    trained and finetuned in float; sets :attr:`State.float_res`."""
    from golden.float_ref import FloatMLP
    from golden.mlp import init_float_params
    from golden.selection import select_offline
    o, r, ph, sel = st.options, st.recipe, st.phases, st.soc.selector
    L, U, T = st.data.labeled, st.data.unlabeled, st.data.test
    n_s = sum(s for s, _ in r.student_schedule)
    n_f = sum(s for s, _ in r.finetune_schedule)
    ph.start("float32", n_s + n_f + 1, "step")
    tf = st.float_teacher if st.float_teacher is not None else _train_float_teacher(st)
    ph.bar.update(1)
    with torch.no_grad():
        fp = torch.softmax(tf(U.X), dim=1)
    fids, flab = _selected(select_offline(fp, sel.k, sel.p).per_class)
    fnet = FloatMLP(st.student_sizes, init_float_params(st.student_sizes, o.seed))
    Xf, yf = U.X[fids], torch.as_tensor(flab)
    if r.student_with_labeled:
        Xf, yf = torch.cat([Xf, L.X]), torch.cat([yf, L.y])
    fnet.train_sgd(Xf, yf, r.student_schedule, batch=r.batch, seed=o.seed)
    ph.bar.update(n_s)
    f_pre = fnet.accuracy(T.X, T.y)
    fnet.train_sgd(L.X, L.y, r.finetune_schedule, batch=r.batch, seed=o.seed)
    ph.bar.update(n_f)
    f_acc = fnet.accuracy(T.X, T.y)
    st.float_res = dict(float_teacher_accuracy=tf.accuracy(T.X, T.y),
                        float_ssl_student_accuracy=f_acc,
                        float_student_before_finetune_accuracy=f_pre,
                        float_selected=int(fids.size),
                        float_precision=float((U.y.numpy()[fids] == flab).mean()))
    ph.finish(samples=int(fids.size), accuracy=f_acc, cycles=0,
              note=f"host: teacher {st.float_res['float_teacher_accuracy']:.3f}, "
                   f"before finetune {f_pre:.3f}")
