"""Apprentice's host firmware: the device interface (:mod:`firmware.device`), the compiler
(:mod:`firmware.compiler`) and the public API, :class:`Accelerator` (:mod:`firmware.accelerator`).

``Accelerator`` and ``MLP`` are imported on first use, so that light modules (``firmware.asm``,
``firmware.protocol``) do not pull in PyTorch.
"""

__all__ = ["Accelerator", "MLP"]


def __getattr__(name):
    if name in __all__:
        from . import accelerator
        return getattr(accelerator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
