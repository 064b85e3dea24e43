from __future__ import annotations

import re

import pytest

from wattwise.errors import ConfigError
from wattwise.report import numbers, statement
from wattwise.report.compare import compare
from wattwise.report.equivalents import EQUIVALENTS, equivalents
from wattwise.report.run_view import build_run_view, replay_predictions
from wattwise.store import open_store

from .runs import EPOCHS, SECONDS, rich_run, samples, store_with_runs

pytest.importorskip("jinja2")


def test_the_view_thins_samples_for_display_and_keeps_the_spike() -> None:
    view = build_run_view(rich_run(), samples(), points=100)
    gpu = next(s for s in view.power if s.channel == "gpu:0")
    assert gpu.raw_points == SECONDS and len(gpu.t_s) <= 100
    assert max(gpu.power_w) == 700.0
    assert view.raw_samples == 2 * SECONDS


def test_the_prediction_is_replayed_after_each_epoch() -> None:
    run = rich_run()
    steps = replay_predictions(run, build_run_view(run, ()).epochs)
    assert [s.epochs_seen for s in steps] == list(range(1, EPOCHS + 1))
    assert steps[-1].energy_j.value == pytest.approx(run.energy_j)  # every epoch seen: the prediction is the sum
    assert all(s.energy_j.low <= s.energy_j.value <= s.energy_j.high for s in steps)


def test_the_page_shows_every_part_and_opens_offline() -> None:
    from wattwise.report.build import run_page

    run = rich_run(name="<b>train</b>")
    page = run_page(run=run, samples=samples())
    for chart in ("chart-power", "chart-components", "chart-windows", "chart-prediction", "chart-intensity"):
        assert f'id="{chart}"' in page
    assert "&lt;b&gt;train&lt;/b&gt;" in page and "<b>train</b>" not in page
    assert "default-src 'none'" in page  # no request can leave the page
    assert not re.search(r"(src|href)=\"https?:", page)
    assert "<script" not in page
    assert "partly forecast" in page  # the stored series had a forecast hour
    for eq in EQUIVALENTS:
        assert eq.source in page
    assert "cpu-tdp-model" in page and "NVIDIA H100" in page  # what was measured and what was estimated


def test_equivalents_carry_the_raw_figure_and_a_source() -> None:
    rows = equivalents(energy_j=3.6e6, co2e_g=249.0, water_l=4.0)
    by_key = {row["key"]: row for row in rows}
    assert by_key["car_km"]["value"] == pytest.approx(249.0 / (400 / 1.609344))
    assert by_key["phone_charges"]["text"].startswith("52.6 ")
    assert by_key["drinking_water_days"]["text"].startswith("2 ")
    assert all(row["raw"] and row["source"] for row in rows)
    tiny = equivalents(energy_j=1.0, co2e_g=0.0, water_l=0.0)
    assert tiny[0]["text"].startswith("1/") and all(row["quantity"] == "energy_j" for row in tiny)


def test_markdown_and_latex_statements() -> None:
    view = build_run_view(rich_run(name="a_b & c"), ())
    md = statement.markdown(view)
    assert "| gpu:0 (gpu) | measured |" in md and "Assumptions:" in md and "After 1 epoch(s)" in md
    tex = statement.latex(view)
    assert r"a\_b \& c" in tex and r"\begin{tabular}" in tex and "CO$_2$e" in tex
    assert "≈" not in tex and "–" not in tex


def test_comparison_calls_out_differences() -> None:
    with open_store(":memory:") as store:
        a, b = store_with_runs(store, 2)
    cmp = compare([a, b])
    energy = next(row for row in cmp.rows if row["key"] == "energy_j")
    assert energy["change_text"][1] == numbers.signed_percent(b.energy_j / a.energy_j - 1)
    assert any(c.startswith("run 2, train-1: energy (IT) +50 %") for c in cmp.callouts), cmp.callouts
    assert [w["name"] for w in cmp.windows] == [f"epoch-{i}" for i in range(1, EPOCHS + 1)]
    with pytest.raises(ConfigError, match="compare 2 to"):
        compare([a])
    with pytest.raises(ConfigError, match="twice"):
        compare([a, a])
    other = b.replace(id="other-run-0001", region="FR", pue=1.4)
    assert any("different regions" in c for c in compare([a, other]).callouts)


@pytest.mark.parametrize(("value", "text"), [(0.123, "+12.3 %"), (-0.05, "−5 %"), (2.2e-14, "±0 %"), (0.0, "±0 %")])
def test_signed_percent(value: float, text: str) -> None:
    assert numbers.signed_percent(value) == text


def test_a_bare_run_renders_without_windows_samples_or_prediction() -> None:
    from tests.store.builders import make_run
    from wattwise.report.build import run_page

    page = run_page(run=make_run("bare0000", windows=(), prediction=None))
    assert 'id="chart-power"' in page and "no data" in page
    assert 'id="chart-windows"' not in page and 'id="chart-prediction"' not in page
    assert "one figure for the whole run" in page


def test_the_power_chart_draws_what_the_view_kept() -> None:
    import re as _re

    from wattwise.report.charts import power_chart

    view = build_run_view(rich_run(), samples(), points=400)
    drawn = int(_re.search(r'data-points="(\d+)"', power_chart(view)).group(1))  # type: ignore[union-attr]
    assert drawn == sum(len(s.t_s) for s in view.power)


def test_axes_use_units_that_keep_ticks_short_and_steps_outside_the_run_are_left_out() -> None:
    from wattwise.report.charts import intensity_chart, power_chart, window_chart

    run = rich_run(scale=3e4)  # hundreds of kWh
    view = build_run_view(run, [s.__class__(s.t_s, s.channel, s.power_w * 1000, s.energy_j) for s in samples()])
    assert "power (kW)" in power_chart(view) and "energy (kWh)" in window_chart(view)
    chart = intensity_chart(run)  # the run's 5 minutes lie inside the first hourly step; the second is after it
    polyline = re.search(r'<polyline class="ww-series" data-points="(\d+)"', chart)
    assert polyline is not None and polyline.group(1) == "2"


def test_the_page_shows_the_work_and_energy_per_token_and_request() -> None:
    from wattwise.records import Work
    from wattwise.report.build import run_page

    run = rich_run().replace(work=Work(output_tokens=1.2e6, requests=4000.0, prompt_tokens=3e5))
    page = run_page(run=run, samples=())
    assert "<h2>Work</h2>" in page and 'id="work"' in page
    assert "1,200,000 output tokens, 4,000 requests, 300,000 prompt tokens" in page
    label = "(measured + estimated)"  # the rich run has a measured GPU and a modelled CPU
    assert f"{numbers.energy_j(run.energy_j / 1.2e6)}  {label}" in page
    assert f"{numbers.energy_j(run.energy_j / 4000)}  {label}" in page
    assert f"{numbers.energy_j(run.energy_j / 4000 * 1000)}, {numbers.mass_g(run.co2e_g / 4)} CO2e  {label}" in page
    assert "<h2>Work</h2>" not in run_page(run=rich_run(), samples=())
    view = build_run_view(run, ())
    assert view.to_dict()["run"]["per_work"]["j_per_output_token"] == run.energy_j / 1.2e6
