"""Golden fixed-point MLP trainer: forward, backward and SGD update in the hardware's integer ops.

A fully connected network ``sizes = (D, H_1, ..., H_{L-1}, C)``: ReLU hidden layers, logits out,
softmax cross-entropy loss (optional temperature, optional soft targets). Every step is a fixed
sequence of the accelerator's operations, each a function of :mod:`golden.fixedpoint` or
:mod:`golden.softmax` (GEMM with a wrapping accumulator, REQ, SMX, RELUB, SGD); ``docs/training.md``
lists the sequence op by op with every shift amount, and the firmware compiles exactly it.

Tensors and formats (``spec.params.Formats``; all ``width``-bit words)
----------------------------------------------------------------------
* inputs, hidden activations and logits: the **act** format (``act_frac`` fraction bits);
* weights and biases: the **weight** format. Layer ``l`` keeps them as one *augmented* matrix
  ``W_l`` of shape ``(n_in + 1, n_out)`` whose last row is the bias; activations are augmented
  with a constant feature 1.0 (``2**act_frac`` in the act format), so ``A_aug · W_l`` includes the
  bias (the layout of ``docs/firmware.md``), and the bias gradient is the last row of the weight
  gradient GEMM ``A_augᵀ · dY`` (a GEMM with the ones vector);
* logit gradients and propagated gradients: the **grad** format;
* targets and probabilities: the **prob** format (one-hot = ``2**prob_frac``);
* accumulators: ``acc_width``-bit, wrapping (:func:`golden.fixedpoint.int_gemm`).

Rounding and random draws
-------------------------
Format conversions (REQ) round half to even. The weight update rounds ``"stochastic"`` (default)
or ``"nearest-even"``. The stochastic-rounding generators are the model's
:class:`~golden.fixedpoint.LaneGenerators` ``rng``, one xorshift32 per lane (as many as the widest
layer, all seeded from ``rng_seed``); only SGD updates draw from them, one draw per weight
element. A layer's matrix is updated in column panels of ``update_lanes`` columns (``None``: one
panel, the whole matrix); column ``j`` of a panel is lane ``j``, and the weight in row ``r``
(input rows ``0 .. n_in - 1``, then the bias row) and lane ``j`` takes generator ``j``'s next
draw. Generator ``j`` therefore draws, in this order: layers ``L, L-1, ..., 1`` (the order the
backward pass produces their gradients); within a layer, the panels left to right that have a
column ``j``; within a panel, rows top to bottom. This is exactly the order of the machine's
``SGD`` instructions on ``update_lanes``-lane weight panels.
"""

import math
from dataclasses import dataclass
from numbers import Real

import torch

from spec.params import ACC_WIDTH, DEFAULT_FORMATS, Formats, check_int, check_positive_int
from . import fixedpoint as fx
from . import softmax as sm
from .data import batch_order

__all__ = [
    "FixedMLP", "StepPlan", "ForwardResult", "init_float_params", "check_sizes",
    "check_schedule", "lr_to_mul_shift", "rng_seed",
]


def check_sizes(sizes):
    """Validate layer sizes: a sequence of at least two positive integers; returns a tuple."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"Layer sizes must be a sequence of integers, not {sizes!r}")
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"Layer sizes must list at least an input and an output size, "
                         f"not {sizes!r}")
    for s in sizes:
        check_positive_int(s, "Layer size")
    return sizes


def check_schedule(schedule):
    """Validate a training schedule: a sequence of ``(steps, lr)`` pairs, ``steps >= 0``,
    ``lr > 0`` finite. Returns a tuple of pairs."""
    if isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__iter__"):
        raise TypeError(f"Schedule must be a sequence of (steps, lr) pairs, not {schedule!r}")
    out = []
    for phase in schedule:
        if not isinstance(phase, (tuple, list)) or len(phase) != 2:
            raise TypeError(f"Schedule phase must be a (steps, lr) pair, not {phase!r}")
        steps, lr = phase
        check_int(steps, "Steps")
        if steps < 0:
            raise ValueError(f"Steps must be a non-negative integer, not {steps!r}")
        _check_lr(lr)
        out.append((steps, lr))
    return tuple(out)


def _check_lr(lr):
    if not isinstance(lr, Real) or isinstance(lr, bool):
        raise TypeError(f"Learning rate must be a real number, not {lr!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"Learning rate must be positive and finite, not {lr!r}")
    return lr


def lr_to_mul_shift(lr, width):
    """Write a learning rate exactly as ``mul · 2**-shift`` with an odd (or 1) integer
    ``1 <= mul < 2**width`` and ``shift >= 0`` when possible (e.g. ``0.125 → (1, 3)``,
    ``0.75 → (3, 2)``, ``2.0 → (2, 0)``).

    Raises
    ------
    ValueError
        If ``lr <= 0``, or ``lr`` is not such a number (e.g. 0.1, whose binary expansion does
        not end).
    """
    _check_lr(lr)
    num, den = float(lr).as_integer_ratio()         # den is a power of two
    shift = den.bit_length() - 1
    if num >= (1 << width):
        raise ValueError(f"Learning rate must be m·2**-k with an integer 1 <= m < 2**{width}, "
                         f"not {lr!r}")
    return num, shift


def rng_seed(seed):
    """The stochastic-rounding generator's seed used for run ``seed`` (a non-negative integer):
    ``(seed ^ 0x9E3779B9) mod 2**32``, or 1 if that is 0 (spreads small seeds over the state)."""
    check_int(seed, "Seed")
    if seed < 0:
        raise ValueError(f"Seed must be a non-negative integer, not {seed!r}")
    return ((seed ^ 0x9E3779B9) & 0xFFFF_FFFF) or 1


def init_float_params(sizes, seed):
    """The seeded float initialisation both trainers start from.

    Layer ``l`` gets an augmented ``float32`` matrix of shape ``(n_in + 1, n_out)`` (last row:
    bias) with entries uniform in ``[-1/sqrt(n_in), 1/sqrt(n_in))`` — the distribution of
    ``torch.nn.Linear``'s default init — drawn with ``torch.rand`` from one generator seeded
    with ``seed``, layer by layer.
    """
    sizes = check_sizes(sizes)
    check_int(seed, "Seed")
    gen = torch.Generator().manual_seed(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(n_in)
        params.append((torch.rand(n_in + 1, n_out, generator=gen) * 2 - 1) * bound)
    return params


@dataclass(frozen=True)
class StepPlan:
    """Every constant of one training step, derived from the formats, learning rate and batch.

    Attributes
    ----------
    ones : int
        The ones feature in the act format, ``2**act_frac``.
    fwd_shift : int
        REQ shift of a layer's output: ``act_frac + weight_frac − act_frac = weight_frac``.
    bwd_shift : int
        REQ shift of a propagated gradient: ``grad_frac + weight_frac − grad_frac = weight_frac``.
    z_frac : int
        Fraction bits of the logits for SMX: ``act_frac``.
    lr_mul, lr_shift : int
        SGD operands: the weight-gradient accumulator has ``act_frac + grad_frac`` fraction bits,
        so ``Δw = lr / batch · g`` in weight units is ``lr_mul · g / 2**lr_shift`` with
        ``lr = lr_mul · 2**-k`` and ``lr_shift = act_frac + grad_frac − weight_frac + k +
        log2(batch)`` (if that is negative, ``lr_mul`` absorbs it and ``lr_shift = 0``).
    inv_temp : int or None
        SMX inverse temperature (``None``: ``T = 1``).
    batch : int
        Samples per step (the batch mean is folded into ``lr_shift``).
    """
    ones: int
    fwd_shift: int
    bwd_shift: int
    z_frac: int
    lr_mul: int
    lr_shift: int
    inv_temp: int = None
    batch: int = 1


@dataclass
class ForwardResult:
    """What the forward pass leaves for the backward pass.

    Attributes
    ----------
    acts : list of torch.Tensor
        ``acts[0]`` the inputs, ``acts[l]`` layer ``l``'s output (``acts[L]``: the logits), each
        ``int64`` (M, n_l) in the act format, not augmented.
    masks : list of torch.Tensor
        ``masks[l-1]``: layer ``l``'s derivative mask from REQ (0 where ReLU is off or the
        output saturated).
    """
    acts: list
    masks: list

    @property
    def logits(self):
        return self.acts[-1]


class FixedMLP:
    """A fully connected network trained in the accelerator's fixed-point arithmetic.

    Parameters
    ----------
    sizes : sequence of int
        ``(D, H_1, ..., C)``: input features, hidden widths, classes; at least two, each ≥ 1.
    formats : Formats
        Fixed-point formats (``spec.params.Formats``); ``act_frac`` and ``prob_frac`` must be at
        most ``width − 2`` (1.0 must be representable: the ones feature and one-hot targets).
    acc_width : int
        Accumulator width; at least ``2 · width``; at most 62.
    rng_seed : int
        Seed of the stochastic-rounding generators (``1 .. 2**32 − 1``; the SEED value).

    Attributes
    ----------
    params : list of torch.Tensor
        Augmented weights: ``params[l-1]`` is ``int64`` ``(n_in + 1, n_out)`` in the weight
        format, last row the bias. Initialised to zero; see :meth:`load_float`.
    rng : LaneGenerators
        The stochastic-rounding generators, one per lane, as many as the widest layer.
    counters : dict
        ``sat_req`` (REQ saturations), ``sat_sgd`` (SGD saturations), ``steps``.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If a size is < 1, fewer than two sizes, a format leaves no room for 1.0, or
        ``acc_width`` is out of range.
    """

    def __init__(self, sizes, *, formats=DEFAULT_FORMATS, acc_width=ACC_WIDTH, rng_seed=1):
        self._sizes = check_sizes(sizes)
        if not isinstance(formats, Formats):
            raise TypeError(f"Formats must be a Formats, not {formats!r}")
        w = formats.width
        for frac, what in ((formats.act_frac, "Activation"), (formats.prob_frac, "Probability")):
            if frac > w - 2:
                raise ValueError(f"{what} fraction bits must be at most width − 2 ({w - 2}) so "
                                 f"that 1.0 is representable, not {frac!r}")
        check_positive_int(acc_width, "Accumulator width")
        if not 2 * w <= acc_width <= 62:
            raise ValueError(f"Accumulator width must be between {2 * w} and 62, "
                             f"not {acc_width!r}")
        self._formats = formats
        self._acc_width = acc_width
        self.rng = fx.LaneGenerators(rng_seed, max(self._sizes[1:]))
        self.params = [torch.zeros(n_in + 1, n_out, dtype=torch.int64)
                       for n_in, n_out in zip(self._sizes[:-1], self._sizes[1:])]
        self.counters = {"sat_req": 0, "sat_sgd": 0, "steps": 0}

    @property
    def sizes(self):
        return self._sizes

    @property
    def formats(self):
        return self._formats

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def layers(self):
        """Number of weight layers, ``L = len(sizes) − 1``."""
        return len(self._sizes) - 1

    # --- parameters ------------------------------------------------------------------------
    def load_float(self, params):
        """Set the weights from float augmented matrices (e.g. :func:`init_float_params`):
        quantized to the weight format, rounding half to even, saturating."""
        if len(params) != self.layers:
            raise ValueError(f"Expected {self.layers} weight matrices, not {len(params)}")
        new = []
        for l, (p, cur) in enumerate(zip(params, self.params), 1):
            p = torch.as_tensor(p)
            if tuple(p.shape) != tuple(cur.shape):
                raise ValueError(f"Layer {l} weights must have shape {tuple(cur.shape)}, "
                                 f"not {tuple(p.shape)}")
            new.append(fx.quantize(p, self._formats.weight)[0])
        self.params = new
        return self

    def float_params(self):
        """The weights as real numbers (``float64`` augmented matrices)."""
        return [fx.dequantize(p, self._formats.weight) for p in self.params]

    # --- data ------------------------------------------------------------------------------
    def quantize_inputs(self, X):
        """Inputs to the act format: a float tensor is rounded (half to even) and saturated; an
        integer tensor is taken as stored act-format integers (and checked)."""
        X = torch.as_tensor(X)
        if X.dim() != 2 or X.shape[1] != self._sizes[0]:
            raise ValueError(f"Inputs must have shape (samples, {self._sizes[0]}), "
                             f"not {tuple(X.shape)}")
        fmt = self._formats.act
        if X.dtype.is_floating_point:
            return fx.quantize(X, fmt)[0]
        X = X.to(torch.int64)
        if X.numel() and (int(X.min()) < fmt.min or int(X.max()) > fmt.max):
            raise ValueError(f"Integer inputs must be {fmt.width}-bit act-format values")
        return X

    def targets(self, y):
        """Training targets in the prob format: labels (1-D integers) become one-hot rows of
        ``2**prob_frac``; a 2-D integer tensor (samples, classes) is taken as soft targets in the
        prob format; a 2-D float tensor is quantized to it (half to even)."""
        y = torch.as_tensor(y)
        C = self._sizes[-1]
        fmt = self._formats.prob
        if y.dim() == 1:
            if y.dtype.is_floating_point:
                raise TypeError("Labels must be integers")
            y = y.to(torch.int64)
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
                raise ValueError(f"Labels must be in 0..{C - 1}")
            t = torch.zeros(y.shape[0], C, dtype=torch.int64)
            t[torch.arange(y.shape[0]), y] = fmt.scale
            return t
        if y.dim() != 2 or y.shape[1] != C:
            raise ValueError(f"Targets must be labels (N,) or soft targets (N, {C}), "
                             f"not of shape {tuple(y.shape)}")
        if y.dtype.is_floating_point:
            return fx.quantize(y, fmt)[0]
        y = y.to(torch.int64)
        if y.numel() and (int(y.min()) < fmt.min or int(y.max()) > fmt.max):
            raise ValueError(f"Integer soft targets must be {fmt.width}-bit prob-format values")
        return y

    # --- the step ----------------------------------------------------------------------------
    def plan(self, lr=2**-3, batch=32, temperature=None):
        """The :class:`StepPlan` of a step with learning rate ``lr`` on ``batch`` samples.

        Raises
        ------
        ValueError
            If ``batch`` is not a power of two, ``lr`` is not ``m·2**-k`` with ``m < 2**width``,
            the resulting ``lr_shift`` exceeds 32, or the temperature is not positive.
        """
        check_positive_int(batch, "Batch size")
        if batch & (batch - 1):
            raise ValueError(f"Batch size must be a power of two, not {batch!r}")
        f = self._formats
        mul, k = lr_to_mul_shift(lr, f.width)
        shift = f.act_frac + f.grad_frac - f.weight_frac + k + batch.bit_length() - 1
        if shift < 0:
            mul, shift = mul << -shift, 0
            if mul >= (1 << f.width):
                raise ValueError(f"Learning rate {lr!r} is too large for the formats")
        if shift > 32:
            raise ValueError(f"Learning rate {lr!r} with batch {batch} needs an SGD shift of "
                             f"{shift}, more than 32")
        inv_temp = None if temperature is None else sm.temperature_to_inv_temp(temperature)
        return StepPlan(ones=f.act.scale, fwd_shift=f.weight_frac, bwd_shift=f.weight_frac,
                        z_frac=f.act_frac, lr_mul=mul, lr_shift=shift, inv_temp=inv_temp,
                        batch=batch)

    def _augment(self, a, ones):
        return torch.cat([a, torch.full((a.shape[0], 1), ones, dtype=torch.int64)], dim=1)

    def forward(self, x):
        """Forward pass on act-format inputs ``x`` (M, D): per layer ``l``::

            Y_l          = GEMM(A_{l-1,aug}, W_l)                                  # wrapping
            A_l, mask_l  = REQ(Y_l, shift=weight_frac, relu=(l < L), nearest-even)

        Returns
        -------
        ForwardResult
        """
        w, ones = self._formats.width, self._formats.act.scale
        acts, masks = [x], []
        for l, W in enumerate(self.params, 1):
            y = fx.int_gemm(self._augment(acts[-1], ones), W, self._acc_width)
            a, mask, nsat = fx.requantize_act(y, self._formats.weight_frac, w,
                                              relu=l < self.layers)
            self.counters["sat_req"] += nsat
            acts.append(a)
            masks.append(mask)
        return ForwardResult(acts, masks)

    def step(self, x, target, plan, *, rounding="stochastic", update_lanes=None):
        """One SGD step on a batch: forward, SMX gradient, backward and update, in the order of
        ``docs/training.md``. ``x``: (M, D) act-format integers with ``M`` the plan's batch;
        ``target``: (M, C) prob-format integers (see :meth:`targets`).

        Returns
        -------
        ForwardResult
            The forward pass of the batch (before the update).
        """
        if not isinstance(plan, StepPlan):
            raise TypeError(f"Plan must be a StepPlan, not {plan!r}")
        if rounding not in fx.ROUNDING_MODES:
            raise ValueError(f"Rounding must be one of {', '.join(map(repr, fx.ROUNDING_MODES))}, "
                             f"not {rounding!r}")
        if update_lanes is not None:
            check_positive_int(update_lanes, "Update lanes")
        if x.shape[0] != plan.batch:
            raise ValueError(f"Batch of {x.shape[0]} samples does not match the plan's batch "
                             f"size ({plan.batch})")
        f, L, aw = self._formats, self.layers, self._acc_width
        fwd = self.forward(x)
        # logits gradient (SMX mode 1), then the logits' saturation mask (RELUB)
        g = sm.softmax_xent_grad(fwd.logits, target, z_frac=plan.z_frac, prob_frac=f.prob_frac,
                                 grad_frac=f.grad_frac, width=f.width, inv_temp=plan.inv_temp)
        d = fx.relu_backward(g, fwd.masks[L - 1])
        for l in range(L, 0, -1):
            W = self.params[l - 1]
            a_aug = self._augment(fwd.acts[l - 1], plan.ones)
            gw = fx.int_gemm(a_aug.T, d, aw)                                # dW_l (bias: last row)
            if l > 1:
                e = fx.int_gemm(d, W[:-1].T, aw)                            # dA_{l-1}, old W_l
            self.params[l - 1] = self._sgd(W, gw, plan, rounding, update_lanes)
            if l > 1:
                g, _, nsat = fx.requantize_act(e, plan.bwd_shift, f.width)
                self.counters["sat_req"] += nsat
                d = fx.relu_backward(g, fwd.masks[l - 2])
        self.counters["steps"] += 1
        return fwd

    def _sgd(self, W, gw, plan, rounding, update_lanes):
        n = W.shape[1]
        lanes = n if update_lanes is None else update_lanes
        panels = []
        for c0 in range(0, n, lanes):
            new, nsat = fx.sgd_update(W[:, c0:c0 + lanes], gw[:, c0:c0 + lanes],
                                      self._formats.width, plan.lr_shift, plan.lr_mul,
                                      rounding=rounding, rng=self.rng)
            self.counters["sat_sgd"] += nsat
            panels.append(new)
        return torch.cat(panels, dim=1)

    # --- training and evaluation -------------------------------------------------------------
    def train(self, X, y, schedule, *, batch=32, seed=0, rounding="stochastic",
              temperature=None, update_lanes=None):
        """Train with plain SGD.

        Parameters
        ----------
        X : tensor (N, D)
            Inputs (floats in [0, 1] or act-format integers).
        y : tensor
            Labels (N,) or soft targets (N, C) (see :meth:`targets`).
        schedule : sequence of (steps, lr)
            Phases run one after the other (e.g. ``[(3000, 2**-3), (1000, 2**-5)]``).
        batch : int
            Samples per step, a power of two.
        seed : int
            Seed of the batch order (:func:`golden.data.batch_order` over all the schedule's
            steps); the float reference uses the same.
        rounding : str
            Rounding of the weight update.
        temperature : float, optional
            Softmax temperature of the loss (``None``: 1).
        update_lanes : int, optional
            Column-panel width of the updates (which lane's generator each weight draws from).

        Returns
        -------
        FixedMLP
            ``self``.
        """
        schedule = check_schedule(schedule)
        xq, t = self.quantize_inputs(X), self.targets(y)
        if xq.shape[0] != t.shape[0]:
            raise ValueError(f"{xq.shape[0]} inputs but {t.shape[0]} targets")
        plans = [self.plan(lr, batch, temperature) for _, lr in schedule]
        order = batch_order(xq.shape[0], batch, sum(s for s, _ in schedule), seed)
        i = 0
        for (steps, _), plan in zip(schedule, plans):
            for _ in range(steps):
                idx = order[i]
                self.step(xq[idx], t[idx], plan, rounding=rounding, update_lanes=update_lanes)
                i += 1
        return self

    def logits(self, X):
        """Logits (act-format integers, (N, C)) of inputs ``X`` (floats or act integers)."""
        return self.forward(self.quantize_inputs(X)).logits

    def predict(self, X):
        """Predicted classes: the index of the largest logit (lowest index on ties)."""
        z = self.logits(X)
        # torch.argmax's tie rule is not documented: take the first maximum explicitly
        m = z.max(dim=1, keepdim=True).values
        idx = torch.arange(z.shape[1]).expand_as(z)
        return torch.where(z == m, idx, z.shape[1]).min(dim=1).values

    def accuracy(self, X, y):
        """Fraction of samples whose predicted class is ``y``."""
        y = torch.as_tensor(y)
        return float((self.predict(X) == y).double().mean()) if y.numel() else float("nan")

    def loss(self, X, y, temperature=None):
        """Mean softmax cross-entropy (float64, for monitoring) of the dequantized logits,
        divided by the temperature, against labels or soft targets."""
        z = fx.dequantize(self.logits(X), self._formats.act)
        if temperature is not None:
            z = z / temperature
        t = fx.dequantize(self.targets(y), self._formats.prob)
        return float(-(t * torch.log_softmax(z, dim=1)).sum(dim=1).mean())
