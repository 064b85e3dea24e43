"""The idle baseline learnt from a run, and the run's share charged with it retroactively (worked by hand)."""

from __future__ import annotations

import pytest

from wattwise.devices.idle import IDLE_FRACTION, IdleSplit


def package(busy_cpus: float, cpus: int = 4) -> float:
    """A package drawing 5 W idle and 4 W per busy CPU."""
    return 5.0 + 4.0 * busy_cpus


def feed(split: IdleSplit, others: list[float], tree: float = 0.5, cpus: int = 4, held: float = 0.25) -> None:
    """One second per entry: ``tree`` CPUs of the run and ``others`` of other processes busy."""
    for other in others:
        busy = tree + other
        split.add(package(busy), 1.0, busy / cpus, held, tree / busy if busy else 0.0)


def test_a_quiet_moment_sets_the_baseline_for_the_whole_run() -> None:
    split = IdleSplit()
    feed(split, [3.0, 3.0, 3.0])  # busy first: at that point the lowest power is 19 W
    split.add(5.0, 1.0, 0.0, 0.25, 0.0)  # then one quiet second
    assert split.baseline() == (5.0, "quiet")
    # 3 busy seconds: 5 W × 0.25 held + 14 W above idle × 0.5/3.5 of the busy time; the quiet second: 5 W × 0.25
    assert split.attributed_j() == pytest.approx(3 * (1.25 + 14.0 * 0.5 / 3.5) + 1.25)


def test_a_machine_never_quiet_but_varying_gives_the_intercept() -> None:
    split = IdleSplit()
    feed(split, [1.0, 3.0, 0.5, 2.5, 3.5, 1.5])
    watts, how = split.baseline()
    assert how == "intercept" and watts == pytest.approx(5.0)


@pytest.mark.parametrize("others", [0.0, 1.0, 3.0])
def test_the_charge_does_not_follow_other_load(others: float) -> None:
    """The reviewer's case: the tree uses 0.5 CPU of 4 and holds 1; other load from none to 3 CPUs."""
    split = IdleSplit()
    split.add(5.0, 1.0, 0.0, 0.25, 0.0)  # the run started on a quiet machine
    feed(split, [others] * 60)
    per_second = (split.attributed_j() - 1.25) / 60
    assert per_second == pytest.approx(5.0 * 0.25 + 4.0 * 0.5)  # 3.25 W whatever else runs


def test_constant_load_never_quiet_falls_back_to_a_prior_not_the_whole_package() -> None:
    split = IdleSplit(prior_w=IDLE_FRACTION * 20.0)  # a package limit of 20 W
    feed(split, [3.0] * 60, held=1.0)  # no CPU set: the run holds the machine
    watts, how = split.baseline()
    assert how == "assumed" and watts == pytest.approx(IDLE_FRACTION * 20.0)
    assert split.attributed_j() < split.energy_j / 2  # not the whole 19 W package as "idle"
    no_prior = IdleSplit()
    feed(no_prior, [3.0] * 60, held=1.0)
    assert no_prior.baseline() == (19.0, "lowest")  # the upper bound, and the note will say so


def test_short_intervals_do_not_set_a_baseline_and_nothing_exceeds_the_energy() -> None:
    split = IdleSplit()
    split.add(0.001, 0.01, 0.0, 1.0, 0.0)
    assert split.baseline() == (0.0, "none")
    assert 0.0 <= split.attributed_j() <= split.energy_j
