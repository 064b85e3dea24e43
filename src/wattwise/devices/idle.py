"""The idle baseline of a metered domain (a RAPL package or DRAM), and the run's share of its energy.

A counter gives energy, not its idle part. :class:`IdleSplit` learns the baseline from the run itself and charges
the run with it *retroactively*: the split of every interval uses the baseline known at the end, so a run whose
first seconds were busy is not charged their whole energy as "idle". The baseline is, in order of preference:

1. **quiet** — the lowest power over intervals (of at least ``MIN_INTERVAL_S``) when the machine's CPU utilisation
   was at most ``QUIET_UTILISATION``: the machine was close to idle;
2. **intercept** — where it never was, but utilisation varied (standard deviation at least ``MIN_SPREAD``): the
   intercept at zero utilisation of the least-squares line of power against utilisation (weighted by time),
   clamped to ``[0, lowest power seen]``;
3. **lowest** — otherwise the lowest interval power seen, an upper bound of the true idle (the machine was never
   quiet and its load never changed): the note says so; where a prior is known (a package's long-term power
   limit × the idle fraction of the CPU model, Cloud Carbon Footprint's 0.74/3.5 W per vCPU), the lower of the
   two (**assumed**), so a machine that others keep busy is not charged to the run as "idle".

With the baseline ``b`` the run's share is ``b × Σ(Δt × held) + Σ(E × cpu share) − b × Σ(Δt × cpu share)``:
idle charged by what the run holds, the rest by its CPU time (:func:`wattwise.devices.base.attribute`, summed over
intervals, which is linear in ``b``), clamped to ``[0, energy]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CCF_AWS_MAX_W_PER_VCPU",
    "CCF_AWS_MIN_W_PER_VCPU",
    "IDLE_FRACTION",
    "MIN_INTERVAL_S",
    "MIN_SPREAD",
    "QUIET_UTILISATION",
    "IdleSplit",
]

CCF_AWS_MIN_W_PER_VCPU = 0.74  # Cloud Carbon Footprint, AWS average minimum watts per vCPU (SPECpower)
CCF_AWS_MAX_W_PER_VCPU = 3.5  # Cloud Carbon Footprint, AWS average maximum watts per vCPU (SPECpower)
IDLE_FRACTION = CCF_AWS_MIN_W_PER_VCPU / CCF_AWS_MAX_W_PER_VCPU  # ≈ 0.21 of the maximum at zero utilisation

MIN_INTERVAL_S = 0.2  # shorter intervals are too noisy to tell a power level
QUIET_UTILISATION = 0.05  # at most 5 % of the machine's CPU busy: close enough to idle
MIN_SPREAD = 0.1  # the standard deviation of utilisation a line fit needs


@dataclass(slots=True)
class IdleSplit:
    """Sums over a run's intervals for one domain; see the module docstring. ``prior_w``: an idle power to fall
    back to when the run never shows one (None: no prior)."""

    prior_w: float | None = None
    energy_j: float = 0.0
    _held_s: float = 0.0  # Σ Δt × held share
    _busy_energy_j: float = 0.0  # Σ E × cpu share
    _busy_s: float = 0.0  # Σ Δt × cpu share
    _quiet_w: float = math.inf
    _lowest_w: float = math.inf
    _n: float = 0.0  # Σ Δt (intervals long enough to fit)
    _su: float = 0.0
    _suu: float = 0.0
    _sp: float = 0.0
    _sup: float = 0.0

    def add(self, energy_j: float, dt_s: float, utilisation: float, held: float, cpu_share: float) -> None:
        """One interval: its energy, length, the machine's CPU utilisation, the run's held and CPU shares."""
        self.energy_j += energy_j
        self._held_s += dt_s * held
        self._busy_energy_j += energy_j * cpu_share
        self._busy_s += dt_s * cpu_share
        if dt_s < MIN_INTERVAL_S:
            return
        power_w = energy_j / dt_s
        self._lowest_w = min(self._lowest_w, power_w)
        if utilisation <= QUIET_UTILISATION:
            self._quiet_w = min(self._quiet_w, power_w)
        self._n += dt_s
        self._su += dt_s * utilisation
        self._suu += dt_s * utilisation * utilisation
        self._sp += dt_s * power_w
        self._sup += dt_s * utilisation * power_w

    def baseline(self) -> tuple[float, str]:
        """(idle power in W, how it was found: "quiet", "intercept", "lowest", "assumed" or "none")."""
        if math.isfinite(self._quiet_w):
            return self._quiet_w, "quiet"
        if not math.isfinite(self._lowest_w):
            return 0.0, "none"
        mean_u = self._su / self._n
        variance = max(0.0, self._suu / self._n - mean_u * mean_u)
        if variance >= MIN_SPREAD * MIN_SPREAD:
            slope = (self._sup / self._n - mean_u * self._sp / self._n) / variance
            intercept = self._sp / self._n - slope * mean_u
            return min(self._lowest_w, max(0.0, intercept)), "intercept"
        if self.prior_w is not None and self.prior_w < self._lowest_w:
            return self.prior_w, "assumed"
        return self._lowest_w, "lowest"

    def attributed_j(self) -> float:
        """The run's share of the energy so far, with the baseline as known now."""
        b, _ = self.baseline()
        share = b * self._held_s + self._busy_energy_j - b * self._busy_s
        return min(self.energy_j, max(0.0, share))
