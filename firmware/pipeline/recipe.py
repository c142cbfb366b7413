"""What a pipeline run does: the networks and schedules (:class:`Recipe`) and the run's options
(:class:`Options`: backend, checks, variants of the recipe)."""

from dataclasses import dataclass, field, fields, replace

from spec.params import check_positive_int

__all__ = ["Recipe", "DEFAULT_RECIPE", "Options"]


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


@dataclass(frozen=True)
class Options:
    """How :func:`firmware.pipeline.run_pipeline` runs the recipe.

    Attributes
    ----------
    backend : str
        A name of :data:`firmware.accelerator.BACKENDS`.
    soc : SocConfig, optional
        Default: :data:`spec.soc.DEFAULT_SOC` with a selector for the data's classes.
    recipe : Recipe
    seed : int
        Initialisation, batch order and stochastic rounding of every network.
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
    backend_options : dict
        Passed to the backend's device (``port``, ``cxxflags``, ...).
    """
    backend: str = "golden"
    soc: object = None
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
    temperature: float = 1.0
    kd_top: int = 3
    guard_margin: float = None
    guard_samples: int = 64
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
        """Check the options against ``data``'s sizes.

        Raises
        ------
        TypeError, ValueError
            On a bad option (messages name it).
        """
        C, n_stream = data.num_classes, len(data.unlabeled)
        if self.stream_chunks is not None:
            check_positive_int(self.stream_chunks, "Stream chunks")
            if self.stream_chunks > n_stream:
                raise ValueError(f"Stream chunks must be at most the stream's {n_stream} "
                                 f"samples, not {self.stream_chunks!r}")
        if self.kd:
            check_positive_int(self.kd_top, "Distillation top classes")
            if self.kd_top > C:
                raise ValueError(f"Distillation top classes must be at most {C}, "
                                 f"not {self.kd_top!r}")
        if self.standalone and (self.kd or self.stream_chunks is not None):
            raise ValueError("--standalone runs the hard-label one-shot recipe: not with --kd "
                             "or --stream-chunks")
        if self.guard_margin is not None:
            check_positive_int(self.guard_samples, "Guard validation samples")
        if self.students not in ("device", "trainer"):
            raise ValueError(f"Students must train on 'device' or 'trainer', "
                             f"not {self.students!r}")
