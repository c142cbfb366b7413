"""What a pipeline run does: the networks and schedules (:class:`Recipe`) and the run's options
(:class:`Options`: backend, checks, variants of the recipe)."""

from dataclasses import dataclass, field, fields, replace
from numbers import Real

from spec.cli import SEED_MAX
from spec.params import check_int, check_positive_int

__all__ = ["Recipe", "DEFAULT_RECIPE", "Options", "SEED_MAX", "check_seed"]

#: Defaults of :class:`Options`' ``temperature``, ``kd_top`` (with ``kd``) and ``guard_samples``
#: (with ``guard_margin``; all of L if it has fewer samples).
TEMPERATURE, KD_TOP, GUARD_SAMPLES = 1.0, 3, 64


def check_seed(seed):
    """Raise unless ``seed`` is an integer in ``0 .. SEED_MAX`` (``2**32 − 1``)."""
    check_int(seed, "Seed")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"Seed must be in 0..{SEED_MAX} (the SEED instruction's "
                         f"{SEED_MAX.bit_length()} bits), not {seed!r}")
    return seed


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
    teacher_lr : float
        Its offline training's full-batch Adam rate.
    teacher_folds : int
        Cross-validation folds that choose its regularisation and training length on the
        labeled training set (:func:`firmware.pipeline.teacher.fit_teacher`); 0: the fixed
        ``teacher_steps``, ``teacher_dropout``, ``teacher_weight_decay`` (digits' tuning).
    teacher_grid : tuple of (dropout, weight decay)
    teacher_step_grid : tuple of int
        The settings and the step counts tried (in order of preference on ties: digits'
        tuning first).
    teacher_cv_margin : float
        Another candidate replaces the first only if its cross-validated accuracy is higher
        by more than this.
    teacher_steps, teacher_weight_decay, teacher_dropout
        The fixed recipe without cross-validation.
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
        The supervised-only student's SGD on L: 3000 steps at 2⁻³, 1000 at 2⁻⁵ (the schedule of
        the reference study of the recipe on digits).
    eval_every : int
        Evaluate the students on the test set about every this many steps (accuracy per epoch).
    """
    teacher_hidden: tuple = (56,)
    teacher_steps: int = 500
    teacher_lr: float = 1e-3
    teacher_weight_decay: float = 1e-4
    teacher_dropout: float = 0.3
    teacher_folds: int = 5
    teacher_grid: tuple = ((0.3, 1e-4), (0.5, 1e-4), (0.1, 1e-4), (0.3, 1e-2))
    teacher_step_grid: tuple = (500, 250, 1000)
    teacher_cv_margin: float = 0.02
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
        """A copy with every device step count scaled by ``fraction`` (a positive finite
        number; at least 1 step each): a quick run of the same pipeline (the offline teacher,
        cheap on the host, keeps its steps)."""
        if isinstance(fraction, bool) or not isinstance(fraction, Real):
            raise TypeError(f"Step scale must be a real number, not {fraction!r}")
        if not 0 < fraction < float("inf"):                         # also NaN
            raise ValueError(f"Step scale must be positive and finite, not {fraction!r}")

        def sc(schedule):
            return tuple((max(1, round(s * fraction)), lr) for s, lr in schedule)
        return replace(self, device_teacher_schedule=sc(self.device_teacher_schedule),
                       student_schedule=sc(self.student_schedule),
                       finetune_schedule=sc(self.finetune_schedule),
                       supervised_schedule=sc(self.supervised_schedule),
                       eval_every=max(1, round(self.eval_every * fraction)))


DEFAULT_RECIPE = Recipe()


@dataclass(frozen=True)
class Options:
    """How :func:`firmware.pipeline.run_pipeline` runs the recipe.

    Attributes
    ----------
    backend : str
        A name of :data:`firmware.accelerator.BACKENDS`.
    soc : SocConfig, optional
        Default: :data:`spec.soc.DEFAULT_SOC` with a selector for the data's classes (and
        ``k``, ``p``); its selector must have the data's classes.
    k, p : int, optional
        Without ``soc``: the selector's K (samples kept per class) and P (classes each
        sample competes for, at most the classes); default the default SoC's.
    recipe : Recipe
    seed : int
        Initialisation, batch order and stochastic rounding of every network: ``0 ..
        SEED_MAX`` (:func:`check_seed`).
    teacher_on_device : bool
    check : bool
        Co-run the golden model (:class:`firmware.pipeline.devices.CheckedDevice`).
    progress : bool
        Progress bars on stderr.
    float_pipeline : bool
        Also run the float32 pipeline.
    device : Device, optional
        Use this device instead of making one for ``backend``.
    students : str
        ``"device"``; or ``"trainer"``: the students train on the host with the golden trainer,
        bit-identical to the device (:class:`firmware.pipeline.trainer.TrainerNet`; the
        benchmark's fast mode: the teacher still labels and selects on the device).
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
    temperature : float, optional
        Only with ``kd`` (default 1).
    kd_top : int, optional
        Only with ``kd`` (default 3), at most the classes.
    guard_margin : float, optional
        The divergence guard (:class:`firmware.guard.DivergenceGuard`) around the SSL
        student's phases with this margin; ``None``: no guard. ``result["guard"]``.
    guard_samples : int, optional
        Only with ``guard_margin``: size of the guard's validation slice (the first samples
        of the validation set; default 64, or all of it if it is smaller), at most its size.
    gate : bool
        Refuse the teacher's labels unless it classifies more validation samples correctly
        than the supervised-only student (default); ``False``: the SSL student is trained
        whatever the gate says (its decision is still reported; for measuring the gate).
    refit : bool
        After the choice, both students finetune once more on all of L, the validation set
        included (:func:`firmware.pipeline.phases.refit`; not with ``kd`` or ``standalone``).
    standalone : bool
        Label, select, student-train and finetune (and the guard) as **one** program image
        run once (:mod:`firmware.standalone`; its batches come from fixed slots, so its
        student is that recipe's, not the host-driven default's); ``result["standalone"]``
        has its cycles, the host accesses between its start and halt (0) and, with
        ``compare_host_driven``, whether the host-driven run of the same recipe gives the same
        selection and weights bit for bit.
    compare_host_driven : bool
    backend_options : dict
        Passed to the backend's device (``port``, ``cxxflags``, ...).
    """
    backend: str = "golden"
    soc: object = None
    k: int = None
    p: int = None
    recipe: Recipe = DEFAULT_RECIPE
    seed: int = 0
    teacher_on_device: bool = False
    check: bool = False
    progress: bool = True
    float_pipeline: bool = True
    device: object = None
    students: str = "device"
    stream_chunks: int = None
    kd: bool = False
    temperature: float = None
    kd_top: int = None
    guard_margin: float = None
    guard_samples: int = None
    gate: bool = True
    refit: bool = False
    standalone: bool = False
    compare_host_driven: bool = True
    backend_options: dict = field(default_factory=dict)

    @classmethod
    def from_keywords(cls, **kwargs):
        """Options from keywords: the fields, any other keyword a backend option."""
        names = {f.name for f in fields(cls)} - {"backend_options"}
        return cls(**{k: v for k, v in kwargs.items() if k in names},
                   backend_options={k: v for k, v in kwargs.items() if k not in names})

    def check_for(self, data):
        """Check the options against ``data`` and the SoC, before anything runs: every
        option's type and range, the options that only act with another (``temperature`` and
        ``kd_top`` with ``kd``, ``guard_samples`` with ``guard_margin``), and that every network
        the run compiles (:meth:`networks`) and the largest selected set fit the SoC's
        scratchpads and main memory.

        Returns
        -------
        Options
            These options with their defaults resolved for ``data`` (``soc``, ``temperature``,
            ``kd_top``, ``guard_samples``).

        Raises
        ------
        TypeError, ValueError
            On a bad option (messages name it and its limit).
        """
        from ..accelerator import BACKENDS
        if self.device is None and self.backend not in BACKENDS:
            raise ValueError(f"Unknown backend {self.backend!r} (available: "
                             f"{', '.join(map(repr, BACKENDS))})")
        check_seed(self.seed)
        if not isinstance(self.recipe, Recipe):
            raise TypeError(f"Recipe must be a Recipe, not {self.recipe!r}")
        if self.students not in ("device", "trainer"):
            raise ValueError(f"Students must train on 'device' or 'trainer', "
                             f"not {self.students!r}")
        if self.standalone and (self.kd or self.stream_chunks is not None):
            raise ValueError("--standalone runs the hard-label one-shot recipe: not with --kd "
                             "or --stream-chunks")
        if not isinstance(self.gate, bool):
            raise TypeError(f"Gate must be a bool, not {self.gate!r}")
        if not isinstance(self.refit, bool):
            raise TypeError(f"Refit must be a bool, not {self.refit!r}")
        if self.refit and (self.kd or self.standalone):
            raise ValueError("refit finetunes on hard labels, host-driven: not with kd or "
                             "standalone")
        if self.standalone and not self.gate:
            raise ValueError("--standalone always runs the gate: not with --no-gate")
        options = replace(self, soc=self._soc_for(data), k=None, p=None, **self._kd_for(data),
                          **self._guard_for(data))
        options._check_networks(data)
        if self.standalone:
            options._check_standalone(data)
        return options

    def _soc_for(self, data):
        """The SoC (``soc``, or the default one with ``k`` and ``p``), its selector checked
        against the data's classes and the stream's size."""
        from .data import soc_for
        C, n_stream = data.num_classes, len(data.unlabeled)
        if self.soc is None:
            soc = soc_for(C, self.k, self.p)
        elif self.k is not None or self.p is not None:
            raise ValueError("Give the selector's K and P in soc or as k and p, not both")
        else:
            soc = self.soc
        sel = soc.selector
        if sel is None or sel.classes != C:
            raise ValueError(f"The SoC's selector must have {C} classes")
        if n_stream > 1 << sel.id_width:
            raise ValueError(f"The unlabeled stream's {n_stream} samples exceed the selector's "
                             f"{sel.id_width}-bit sample ids (at most {1 << sel.id_width})")
        if self.stream_chunks is not None:
            check_positive_int(self.stream_chunks, "Stream chunks")
            if self.stream_chunks > n_stream:
                raise ValueError(f"Stream chunks must be at most the stream's {n_stream} "
                                 f"samples, not {self.stream_chunks!r}")
        return soc

    def _kd_for(self, data):
        """``temperature`` and ``kd_top``: ``None`` without ``kd`` (refused if given), else
        with their defaults."""
        values = dict(temperature=self.temperature, kd_top=self.kd_top)
        if not self.kd:
            for name, value in values.items():
                if value is not None:
                    raise ValueError(f"{name}={value!r} has no effect without kd=True")
            return values
        values = dict(temperature=TEMPERATURE if self.temperature is None else self.temperature,
                      kd_top=KD_TOP if self.kd_top is None else self.kd_top)
        check_positive_int(values["kd_top"], "Distillation top classes")
        if values["kd_top"] > data.num_classes:
            raise ValueError(f"Distillation top classes must be at most {data.num_classes}, "
                             f"not {values['kd_top']!r}")
        return values      # the temperature: checked by the networks (the SMX field)

    def _guard_for(self, data):
        """``guard_samples``: ``None`` without ``guard_margin`` (refused if given), else with
        its default, at most the validation set's size; the margin checked."""
        V = data.validation
        if self.guard_margin is None:
            if self.guard_samples is not None:
                raise ValueError(f"guard_samples={self.guard_samples!r} has no effect without "
                                 f"guard_margin")
            return {}
        from ..guard import DivergenceGuard
        n = min(GUARD_SAMPLES, len(V)) if self.guard_samples is None else self.guard_samples
        check_positive_int(n, "Guard validation samples")
        if n > len(V):
            raise ValueError(f"Guard validation samples must be at most the {len(V)} "
                             f"validation samples, not {n!r}")
        DivergenceGuard(V.X[:n], V.y[:n], self.guard_margin)          # checks the margin
        return dict(guard_samples=n)

    def networks(self, data):
        """The networks the run compiles for ``data``: ``[(name, MLPDescription, program
        kinds)]`` (the teacher with the selection programs, the distillation teacher, the
        students; as :meth:`firmware.Accelerator.mlp` makes them)."""
        from ..compiler import MLPDescription
        r, D, C = self.recipe, data.features, data.num_classes
        if self.teacher_on_device:
            t_sizes, t_batch = (D, *r.device_teacher_hidden, C), r.device_teacher_batch
        else:
            t_sizes, t_batch = (D, *r.teacher_hidden, C), r.batch
        out = [("teacher", MLPDescription(t_sizes, batch=t_batch),
                ("train",) * self.teacher_on_device + ("logits", "probs", "select", "valacc"))]
        if self.kd:
            out.append(("distillation teacher",
                        MLPDescription(t_sizes, batch=r.batch, temperature=self.temperature),
                        ("logits", "probs")))
        if self.students == "device" or self.standalone:
            s_sizes = (D, *r.student_hidden, C)
            out.append(("student",
                        MLPDescription(s_sizes, batch=r.batch,
                                       temperature=self.temperature if self.kd else None),
                        ("train", "logits", "probs", "valacc")))
        return out

    def _check_standalone(self, data):
        """Lay the standalone image out as :func:`firmware.standalone.run_standalone` will
        (weights 0: the layout depends only on the sizes, the sets, the schedules and the
        guard): it must fit main memory and its tables."""
        import numpy as np
        from ..compiler import MLPDescription
        from ..standalone import StandaloneImage
        r, L, V = self.recipe, data.labeled, data.validation
        t_sizes = self.networks(data)[0][1].sizes
        s_sizes = (data.features, *r.student_hidden, data.num_classes)
        td = MLPDescription(t_sizes, batch=r.batch)
        sd = MLPDescription(s_sizes, batch=r.batch, lr=r.student_schedule[0][1])

        def zeros(sizes):
            return [np.zeros((a + 1, b), dtype=np.int64) for a, b in zip(sizes, sizes[1:])]
        guard = None if self.guard_margin is None else (self.guard_margin, self.guard_samples)
        try:
            StandaloneImage(self.soc, td, zeros(t_sizes), sd, zeros(s_sizes), self.seed,
                            data.unlabeled.X, L.X, L.y, r.student_schedule,
                            r.finetune_schedule, validation=(V.X, V.y),
                            supervised_schedule=r.supervised_schedule, guard=guard)
        except ValueError as e:
            raise ValueError(f"The standalone image: {e}") from None

    def _check_networks(self, data):
        """Compile every network of :meth:`networks` for the SoC: each must fit the
        scratchpads and main memory, hold at least one inference block, and the teacher's
        data region the largest selected set."""
        from ..compiler import compile_mlp
        from ..plan import check_selection_fits
        for name, desc, kinds in self.networks(data):
            what = f"The {name} ({'-'.join(map(str, desc.sizes))}, batch {desc.batch})"
            try:
                cm = compile_mlp(desc, self.soc, kinds)
            except ValueError as e:
                raise ValueError(f"{what}: {e}") from None
            if cm.eval_capacity < 1:
                raise ValueError(f"{what}: main memory is too small for one inference block "
                                 f"({cm.block_words + desc.batch * desc.sizes[-1]} words; "
                                 f"{cm.regions['data'].words} are left)")
            if "select" in kinds:
                check_selection_fits(self.soc.selector, cm.regions["data"], desc.formats.width,
                                     where=f"main memory after the {name}'s weights and "
                                           f"programs")
