"""A student trained on the host by the golden trainer (``run_pipeline(students="trainer")``)."""

__all__ = ["TrainerNet"]


class TrainerNet:
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
