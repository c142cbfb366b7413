"""The boards' Amaranth platforms: amaranth-boards' classes, as the project builds with them.

:class:`platforms.boards.BoardConfig` names one of these classes; this module is imported only
when a platform is made (a build), so that the host side never imports Amaranth.
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform as _ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform as _ULX3S_85F_Platform

__all__ = ["ULX3S85FPlatform", "ICEBreakerPlatform", "oscillator_hz"]


class ULX3S85FPlatform(_ULX3S_85F_Platform):
    """The ULX3S with an ECP5-85F, as amaranth-boards defines it, buildable without a programmer.

    amaranth-boards lists ``openFPGALoader`` among the ULX3S's required tools, so a build stops
    with ``ToolNotFound`` on a machine without it even when nothing is programmed. Building needs
    only Yosys, nextpnr-ecp5 and ecppack; programming still runs ``$OPENFPGALOADER`` (default
    ``openFPGALoader``).
    """

    @property
    def required_tools(self):
        return [tool for tool in super().required_tools if tool != "openFPGALoader"]


class ICEBreakerPlatform(_ICEBreakerPlatform):
    """The iCEBreaker (iCE40UP5K-SG48), as amaranth-boards defines it."""


def oscillator_hz(platform, clock):
    """The frequency in Hz of clock resource ``clock`` (number 0) of platform class ``platform``.

    Raises
    ------
    ValueError
        If the platform has no such clock resource.
    """
    for resource in platform.resources:
        if resource.name == clock and resource.number == 0:
            return resource.clock.frequency
    raise ValueError(f"Platform {platform.__name__} has no clock resource {clock!r}")
