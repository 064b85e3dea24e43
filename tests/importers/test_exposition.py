"""wattwise's reader of Prometheus' text format agrees with Prometheus' own parser, and refuses malformed lines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.importers.servers import page
from wattwise.errors import CounterError
from wattwise.importers.exposition import parse
from wattwise.integrations.prometheus import exposition

parser = pytest.importorskip("prometheus_client.parser")
DCGM = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"


def reference(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of ``name`` as prometheus_client reads them (it names a counter's samples ``<name>_total``)."""
    found = []
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and family.name in (name, name.removesuffix("_total")):
                found.append((dict(sample.labels), sample.value))
    return found


def test_a_recorded_dcgm_page_reads_as_prometheus_reads_it() -> None:
    text = page("dcgm-exporter.txt", E0=319159391, E1=31035686671)
    ours = [(s.labels, s.value) for s in parse(text, (DCGM,))]
    assert ours == reference(text, DCGM)
    assert len(ours) == 2 and ours[0][0]["modelName"] == "NVIDIA H100 80GB HBM3"


def test_a_recorded_kepler_page_reads_as_prometheus_reads_it() -> None:
    text = page("kepler-0.7.txt", TD=1.5, TI=2.25, SD=3, SI=4e3)
    name = "kepler_container_joules_total"
    assert [(s.labels, s.value) for s in parse(text, (name,))] == reference(text, name)


label_values = st.text(st.characters(codec="utf-8"), max_size=30)  # any text a label can hold (no lone surrogate)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(label_values, min_size=1, max_size=4),
    number=st.floats(allow_nan=False, allow_infinity=True, width=64),
)
def test_any_label_value_and_number_survive_a_write_and_a_read(values: list[str], number: float) -> None:
    labels = {f"l{i}": value for i, value in enumerate(values)}
    text = exposition([("demo_joules_total", "counter", "help text", [(labels, number)])])
    (series,) = parse(text, ("demo_joules_total",))
    assert series.labels == labels
    assert series.value == number or (math.isinf(number) and series.value == number)
    assert reference(text, "demo_joules_total") == [(labels, number)]


@pytest.mark.parametrize(
    "line",
    [
        f'{DCGM}{{gpu="0" 12',  # labels never closed
        f"{DCGM}{{gpu=0}} 12",  # value not quoted
        f'{DCGM}{{gpu="0"}} twelve',
        f'{DCGM}{{gpu="0"}}',  # no value
        f'{DCGM}{{gpu="0",gpu="1"}} 12',  # a label twice
        f'{DCGM}{{gpu="0"}} 12 13 14',
    ],
)
def test_a_malformed_line_of_the_wanted_metric_is_named(line: str) -> None:
    text = f"# HELP x y\nother_metric garbage {{{{\n{line}\n"
    with pytest.raises(CounterError, match=r"line 3 is not in Prometheus' text format"):
        parse(text, (DCGM,))


def test_other_metrics_and_comments_are_not_looked_at() -> None:
    text = f'<html>not metrics</html>\nother{{ broken\n# {DCGM}{{gpu="9"}} 1\n{DCGM}{{gpu="0"}} 5 1700000000000\n'
    (series,) = parse(text, (DCGM,))
    assert series.labels == {"gpu": "0"} and series.value == 5.0 and series.timestamp_ms == 1700000000000
