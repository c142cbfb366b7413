"""The boards Apprentice builds for: configurations, platforms and clocking.

``get_board("ulx3s-85f")`` / ``get_board("icebreaker")`` return a :class:`BoardConfig`;
``python -m rtl.build`` builds a bitstream for one (``docs/build.md``).

- :mod:`platforms.boards` — each board's configuration as data (pure Python: the host side reads
  it without importing Amaranth).
- :mod:`platforms.vendor` — the boards' Amaranth platforms (amaranth-boards).
- :mod:`platforms.pll` — the clock and reset domain from the board's oscillator (PLL).
- :mod:`platforms.top_soc`, :mod:`platforms.top_array`, :mod:`platforms.board_io` — the board
  tops: the SoC or the bare array, wired to the board's clock, UART, LEDs and reset button.

The platform and PLL names are loaded on first use, so ``import platforms`` does not import
Amaranth.
"""

from .boards import BOARDS, BoardConfig, get_board

__all__ = ["BOARDS", "BoardConfig", "ICEBreakerPlatform", "ULX3S85FPlatform",
           "get_board", "ClockReset", "ecp5_pll", "ice40_pll"]

_LAZY = {"ICEBreakerPlatform": "vendor", "ULX3S85FPlatform": "vendor",
         "ClockReset": "pll", "ecp5_pll": "pll", "ice40_pll": "pll"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
