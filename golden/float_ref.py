"""Float32 reference of the fixed-point trainer (:mod:`golden.mlp`): ordinary ``torch.nn`` and
autograd, same networks, same initialisation, same batch order, same loss.

Used only to measure how close fixed point gets; nothing here is bit-exact or hardware-shaped.

The loss matches the fixed-point step's gradient: for a batch of ``M`` samples with logits ``z``,
targets ``t`` (one-hot or soft, rows summing to 1) and temperature ``T``::

    loss = T · mean_i CE(t_i, softmax(z_i / T))      # d loss / d z_i = (softmax(z_i/T) − t_i) / M

(the fixed-point SMX gradient is ``softmax(z/T) − t`` with no temperature factor and SGD divides by
the batch: see ``docs/training.md``). With ``T = 1`` this is the usual mean cross-entropy.
"""

import torch
from torch import nn

from .data import batch_order
from .mlp import check_schedule, check_sizes

__all__ = ["FloatMLP", "train_teacher"]


class FloatMLP(nn.Module):
    """A float32 MLP: ``Linear`` layers with ReLU between them, logits out.

    Parameters
    ----------
    sizes : sequence of int
        ``(D, H_1, ..., C)``, as :class:`golden.mlp.FixedMLP`.
    params : list of tensors, optional
        Augmented ``(n_in + 1, n_out)`` matrices (last row: bias), e.g. from
        :func:`golden.mlp.init_float_params`; default: ``torch.nn.Linear``'s own init.

    Raises
    ------
    TypeError, ValueError
        On bad sizes, or params of the wrong number or shape.
    """

    def __init__(self, sizes, params=None):
        super().__init__()
        self.sizes = check_sizes(sizes)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.sizes[:-1],
                                                                     self.sizes[1:]))
        if params is not None:
            self.load_params(params)

    def load_params(self, params):
        """Set the weights from augmented matrices (``W = P[:-1]ᵀ``, ``b = P[-1]``)."""
        if len(params) != len(self.linears):
            raise ValueError(f"Expected {len(self.linears)} weight matrices, not {len(params)}")
        with torch.no_grad():
            for l, (lin, p) in enumerate(zip(self.linears, params), 1):
                p = torch.as_tensor(p, dtype=torch.float32)
                want = (lin.in_features + 1, lin.out_features)
                if tuple(p.shape) != want:
                    raise ValueError(f"Layer {l} weights must have shape {want}, "
                                     f"not {tuple(p.shape)}")
                lin.weight.copy_(p[:-1].T)
                lin.bias.copy_(p[-1])
        return self

    def params(self):
        """The weights as augmented ``float32`` matrices (detached copies)."""
        return [torch.cat([lin.weight.detach().T, lin.bias.detach()[None]], dim=0).clone()
                for lin in self.linears]

    def forward(self, x):
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < len(self.linears) - 1:
                x = torch.relu(x)
        return x

    def _targets(self, y):
        y = torch.as_tensor(y)
        C = self.sizes[-1]
        if y.dim() == 1:
            return nn.functional.one_hot(y.to(torch.int64), C).to(torch.float32)
        if y.dim() != 2 or y.shape[1] != C:
            raise ValueError(f"Targets must be labels (N,) or soft targets (N, {C}), "
                             f"not of shape {tuple(y.shape)}")
        return y.to(torch.float32)

    def train_sgd(self, X, y, schedule, *, batch=32, seed=0, temperature=None):
        """Plain SGD (no momentum, no weight decay) with the fixed-point trainer's schedule and
        batch order (:func:`golden.data.batch_order` with ``seed``). Returns ``self``."""
        schedule = check_schedule(schedule)
        X = torch.as_tensor(X, dtype=torch.float32)
        t = self._targets(y)
        T = 1.0 if temperature is None else float(temperature)
        if not T > 0:
            raise ValueError(f"Temperature must be positive, not {temperature!r}")
        order = batch_order(X.shape[0], batch, sum(s for s, _ in schedule), seed)
        opt = torch.optim.SGD(self.parameters(), lr=schedule[0][1] if schedule else 0.1)
        i = 0
        for steps, lr in schedule:
            for group in opt.param_groups:
                group["lr"] = lr
            for _ in range(steps):
                idx = order[i]
                z = self(X[idx])
                loss = T * -(t[idx] * torch.log_softmax(z / T, dim=1)).sum(dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                i += 1
        return self

    @torch.no_grad()
    def predict(self, X):
        return self(torch.as_tensor(X, dtype=torch.float32)).argmax(dim=1)

    def accuracy(self, X, y):
        y = torch.as_tensor(y)
        return float((self.predict(X) == y).double().mean())

    @torch.no_grad()
    def loss(self, X, y, temperature=None):
        """Mean cross-entropy of ``softmax(z/T)`` against labels or soft targets (float64)."""
        z = self(torch.as_tensor(X, dtype=torch.float32)).double()
        if temperature is not None:
            z = z / temperature
        t = self._targets(y).double()
        return float(-(t * torch.log_softmax(z, dim=1)).sum(dim=1).mean())


def train_teacher(sizes, X, y, *, steps=500, lr=1e-3, weight_decay=1e-4, dropout=0.2, seed=0,
                  callback=None):
    """The teacher of the recipe, trained offline in float32: an MLP of ``sizes`` with dropout
    after every hidden ReLU, Adam, full-batch steps on ``(X, y)``.

    The initialisation is :func:`golden.mlp.init_float_params` with ``seed``; dropout draws
    from a generator seeded with ``seed`` too, so a run is deterministic.

    Parameters
    ----------
    sizes : sequence of int
    X : tensor (N, D)
        Floats in [0, 1].
    y : tensor (N,)
        Labels.
    steps : int
    lr, weight_decay, dropout : float
        Adam's rate and weight decay; the dropout probability (``0 <= dropout < 1``).
    seed : int
    callback : callable, optional
        Called as ``callback(step, net)`` after every step (``step`` from 1), e.g. to score
        the network on held-out data for early stopping (it must not change ``net``).

    Returns
    -------
    FloatMLP
        In evaluation mode (no dropout): its :meth:`FloatMLP.params` load into a fixed-point
        network (:meth:`golden.mlp.FixedMLP.load_float`).
    """
    from .mlp import init_float_params
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"Dropout must be in [0, 1), not {dropout!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"Teacher steps must be a non-negative integer, not {steps!r}")
    net = FloatMLP(sizes, init_float_params(sizes, seed))
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    layers = list(net.linears)
    for step in range(1, steps + 1):
        h = X
        for i, layer in enumerate(layers):
            h = layer(h)
            if i < len(layers) - 1:
                h = torch.relu(h)
                if dropout:
                    keep = (torch.rand(h.shape, generator=gen) >= dropout).to(h.dtype)
                    h = h * keep / (1 - dropout)
        loss = nn.functional.cross_entropy(h, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if callback is not None:
            callback(step, net)
    return net.eval()
