"""Network energy from bytes moved: a documented model, labelled ``estimated``.

Energy = bytes received + sent on non-loopback interfaces (``HostSnapshot.net_bytes``), in decimal GB
(10^9 bytes, via :func:`wattwise.units.bytes_to_gb`), × a coefficient in kWh/GB:

* default 0.001 kWh/GB: Cloud Carbon Footprint's networking coefficient, chosen there for data moved between
  hyperscale data centres over their own fibre, the most efficient case
  (https://www.cloudcarbonfootprint.org/docs/methodology);
* high bound 0.0053 kWh/GB: Aslan, Mayers, Koomey & France (2018), "Electricity Intensity of Internet Data
  Transmission: Untangling the Estimates", Journal of Industrial Ecology 22(4): 0.06 kWh/GB in 2015, halving
  about every 2 years, extrapolated by wattwise to 2022 (0.06 / 2^3.5 ≈ 0.0053). That covers the core and
  access networks of the public internet, so the high factor is 0.0053 / coefficient (×5.3 for the default).
* the low factor, ×0.5, is an ASSUMPTION of wattwise, not a published figure.

The counters are machine-wide: Linux keeps no per-process byte counts without eBPF, so another process's download
would be charged to the run if the channel were attributed. It is not: with process attribution (the default)
the channel's attributed energy is 0 and its machine energy the machine's traffic; the run summary shows that figure
on its own line ("not in the total"), and ``--attribution machine`` counts it. A counter that goes backwards (an
interface removed or reset) adds nothing for that interval; counting resumes from the new value. The first read
returns zeros.
"""

from __future__ import annotations

from wattwise.devices.base import Channel, HostSnapshot, MeterReading, ProbeResult
from wattwise.units import bytes_to_gb, kwh_to_j

__all__ = ["ASLAN_2022_KWH_PER_GB", "CCF_NETWORK_KWH_PER_GB", "NetworkSource", "probe_network"]

CCF_NETWORK_KWH_PER_GB = 0.001  # Cloud Carbon Footprint networking coefficient
ASLAN_2022_KWH_PER_GB = 0.06 / 2**3.5  # Aslan et al. 2018: 0.06 kWh/GB in 2015, halving every 2 years → 2022
LOW_FACTOR = 0.5  # ASSUMPTION (see the module docstring), not a published figure


def _coefficient(kwh_per_gb: float | None) -> tuple[float, str]:
    if kwh_per_gb is None:
        return CCF_NETWORK_KWH_PER_GB, "Cloud Carbon Footprint"
    return kwh_per_gb, "network_kwh_per_gb setting"


def _channel(kwh_per_gb: float, origin: str, attributed: bool = False) -> Channel:
    high = ASLAN_2022_KWH_PER_GB / kwh_per_gb if 0 < kwh_per_gb < ASLAN_2022_KWH_PER_GB else 1.0
    whose = (
        "counted whole (machine attribution)"
        if attributed
        else "not charged to the process tree: Linux has no per-process byte counters, and another process's "
        "traffic must not become this run's energy"
    )
    detail = f"{kwh_per_gb:g} kWh/GB ({origin}) × bytes sent and received, machine-wide; {whose}"
    return Channel(
        "network",
        "network",
        "estimated",
        "network-model",
        detail,
        low_factor=LOW_FACTOR,
        high_factor=high,
    )


class NetworkSource:
    """One estimated channel, ``network``: machine-wide bytes × kWh/GB; attributed = machine."""

    name: str = "network-model"

    def __init__(self, kwh_per_gb: float | None = None, *, attributed: bool = False) -> None:
        """``attributed``: charge the machine's traffic to the process tree (for ``attribution = "machine"``)."""
        self.kwh_per_gb, origin = _coefficient(kwh_per_gb)
        self.attributed = attributed
        self._channel = _channel(self.kwh_per_gb, origin, attributed)
        self._last_bytes: int | None = None
        self._energy_j = 0.0

    def channels(self) -> tuple[Channel, ...]:
        return (self._channel,)

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        now = snapshot.net_bytes
        if self._last_bytes is not None and now > self._last_bytes:
            self._energy_j += kwh_to_j(bytes_to_gb(now - self._last_bytes) * self.kwh_per_gb)
        self._last_bytes = now
        return (MeterReading(self._energy_j, self._energy_j if self.attributed else 0.0),)

    def close(self) -> None:
        """Nothing to release."""


def probe_network(kwh_per_gb: float | None = None) -> ProbeResult:
    """Always available; says the coefficient and its source."""
    value, origin = _coefficient(kwh_per_gb)
    channel = _channel(value, origin)
    return ProbeResult(
        source="network-model",
        available=True,
        summary=(
            f"estimated: {value:g} kWh/GB ({origin}) of machine-wide traffic; "
            f"range ×{channel.low_factor:g}…×{channel.high_factor:.2g}"
        ),
        channels=(channel,),
    )
