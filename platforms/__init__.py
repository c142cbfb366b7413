"""The boards Apprentice builds for: platforms, configurations and clocking.

``get_board("ulx3s-85f")`` / ``get_board("icebreaker")`` return a :class:`BoardConfig`;
``python -m rtl.build`` builds a bitstream for one (``docs/build.md``).
"""

from .boards import (BOARDS, BoardConfig, ICEBreakerPlatform, ULX3S85FPlatform,
                     get_board)
from .pll import ClockReset, ecp5_pll, ice40_pll

__all__ = ["BOARDS", "BoardConfig", "ICEBreakerPlatform", "ULX3S85FPlatform",
           "get_board", "ClockReset", "ecp5_pll", "ice40_pll"]
