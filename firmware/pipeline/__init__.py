"""The teacher/student semi-supervised pipeline on the accelerator (``python -m firmware ssl``).

The recipe of Yalniz et al. (2019), every phase but the offline teacher on the device:

1. **data** — scikit-learn's digits, wine or breast-cancer by name, or ``--dataset PATH.npz``
   (``X`` N×D in [0, 1] or ``uint8``, ``y`` labels 0..C−1; checked before anything runs); a
   seeded stratified 30 % test split; ``--labeled-fraction`` of the rest is labeled (L), the
   remainder is the unlabeled stream U (its labels are only used to report pseudo-label
   precision); 15 % of L is carved out as the validation set, which nothing trains on.
2. **teacher** — a larger MLP trained offline in float32 on L (Adam, dropout, both and its
   length chosen by cross-validation on L: :mod:`~firmware.pipeline.teacher`) and quantized, as
   a device would ship with a pretrained teacher; ``--teacher-on-device`` trains a teacher that
   fits the device's training program on the accelerator instead. Then the **supervised**
   student (L only) and the **gate**: the teacher's labels are used unless it trails the
   supervised student on the validation set (counted on the device).
3. **label + select** — the teacher labels U on the device and the SoC's balanced selector
   (``SELCLR``/``SELFEED``/``SELOUT``) keeps, for every class, the K samples of U with the
   highest probability of it, each sample competing for its top-P classes.
4. **student-train** — the student trains on the selected set with the pseudo-labels; then
   **finetune** on L; both on the device (the teacher's programs and weights leave main memory
   for the student's: teacher and student share the array).
5. **choice** — the SSL and the supervised student counted on the validation set on the
   device; the better is delivered (``delivered`` in the result).
6. **evaluation** on the test set on the device after every phase; the float32 PyTorch
   pipeline on the host.

``--check`` co-runs the golden model: every program runs on both and the whole main memory is
compared after each; the first difference stops the run with the phase, the program and the
address. ``docs/pipeline.md`` describes the mapping and the measured figures.

Modules: :mod:`~firmware.pipeline.data` (the sets), :mod:`~firmware.pipeline.recipe` (the
networks and schedules, the run's options), :mod:`~firmware.pipeline.teacher` (the
cross-validated teacher), :mod:`~firmware.pipeline.devices` (checked and
counting devices), :mod:`~firmware.pipeline.progress` (phase rows and bars),
:mod:`~firmware.pipeline.phases` (each phase over the run's state), :mod:`~firmware.pipeline.run`
(:func:`run_pipeline`), :mod:`~firmware.pipeline.report` (table, plots, JSON); the command line
is :mod:`firmware.ssl`.
"""

from .data import Data, prepare_data, soc_for
from .devices import CheckFailed, CheckedDevice
from .recipe import DEFAULT_RECIPE, Options, Recipe
from .report import ReportError, board_clock_mhz, format_table, write_json, write_report
from .run import run_pipeline

__all__ = ["Data", "prepare_data", "soc_for", "Recipe", "DEFAULT_RECIPE", "Options",
           "run_pipeline", "CheckedDevice", "CheckFailed", "board_clock_mhz", "format_table",
           "write_json", "write_report", "ReportError"]
