"""A distributed run's ranks and a cluster's counters on the run's page, in ``runs show`` and in the page's JSON."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from rich.console import Console

from tests.importers.runs import GPU0, GPU1, T0, gpu_run
from wattwise.records import ExternalFigure, RankFigure, Run
from wattwise.report import numbers
from wattwise.report.charts import RANK_BARS
from wattwise.report.cluster import EXTERNAL_NOTE, FLAGGED, RANK_NOTE, external_rows, external_totals, hosts
from wattwise.report.run_view import build_run_view
from wattwise.report.terminal import run_summary

pytest.importorskip("jinja2")

STATUSES = {5: "lost", 7: "missing"}


def ranks(count: int = 8, per_host: int = 4) -> tuple[RankFigure, ...]:
    out = []
    for i in range(count):
        status = STATUSES.get(i, "complete")
        share = 0.0 if status == "missing" else 1500.0 + 10.0 * i
        own = 0.0 if status == "missing" else 120_000.0 + 1000.0 * i
        cpu = 0.0 if status == "missing" else 280.0 + i
        out.append(RankFigure(i, i % per_host, f"gpu-node-{i // per_host:02d}", own + share, share, cpu, status))
    return tuple(reversed(out))  # the record's order is not the page's: ranks are shown by rank


def counters() -> tuple[ExternalFigure, ...]:
    end = T0 + timedelta(seconds=300)
    return (
        ExternalFigure("dcgm", f"gpu 0 {GPU0}", 127_500.0, T0, end, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION from X"),
        ExternalFigure("dcgm", f"gpu 1 {GPU1}", 124_000.0, T0, end, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION from Y"),
        ExternalFigure("kepler", "pod ml/train-7f9c (cpu, dram)", 21_000.0, T0, end, "kepler_pod_cpu_joules_total"),
        ExternalFigure("slurm", "job 4242 on gpu-node-[07-08]", 1_843_211.0, None, None, "sacct ConsumedEnergyRaw"),
    )


def distributed() -> Run:
    return gpu_run(uuids=(GPU0, GPU1)).replace(ranks=ranks(), external=counters())


def test_hosts_group_ranks_with_subtotals_that_add_up() -> None:
    run = distributed()
    groups = hosts(run)
    assert [g.host for g in groups] == ["gpu-node-00", "gpu-node-01"]
    assert [r.rank for g in groups for r in g.ranks] == list(range(8))
    for group in groups:
        assert group.energy_j == pytest.approx(sum(r.energy_j for r in group.ranks))
        assert group.node_share_j == pytest.approx(sum(r.node_share_j for r in group.ranks))
        assert group.cpu_s == pytest.approx(sum(r.cpu_s for r in group.ranks))
    assert sum(g.energy_j for g in groups) == pytest.approx(sum(r.energy_j for r in run.ranks))
    assert [(r.rank, r.status) for g in groups for r in g.flagged] == sorted(STATUSES.items())


def test_each_counter_is_set_beside_the_wattwise_figure_for_the_same_thing() -> None:
    run = distributed()
    rows = external_rows(run)
    gpus = {c.detail.split("(")[1].split(")")[0]: c for c in run.components if c.component == "gpu"}
    for row in rows[:2]:
        uuid = row.figure.scope.split()[-1]
        assert row.wattwise.energy_j == gpus[uuid].machine_energy_j  # DCGM counts the whole GPU
        assert row.difference_j == pytest.approx(row.figure.energy_j - gpus[uuid].machine_energy_j)
        assert row.difference == pytest.approx(row.figure.energy_j / gpus[uuid].machine_energy_j - 1)
    cpu_dram = sum(c.energy_j for c in run.components if c.component in ("cpu", "dram"))
    assert rows[2].wattwise.energy_j == pytest.approx(cpu_dram)
    assert rows[3].wattwise.energy_j is None and "gpu-node-[07-08]" in rows[3].wattwise.note  # two nodes, one host
    (total,) = external_totals(rows)
    assert total.figure.energy_j == pytest.approx(rows[0].figure.energy_j + rows[1].figure.energy_j)
    assert total.wattwise.energy_j == pytest.approx(sum(g.machine_energy_j for g in gpus.values()))


def test_a_counter_for_a_gpu_wattwise_did_not_measure_has_no_counterpart() -> None:
    run = gpu_run(uuids=(GPU0,)).replace(external=counters()[1:2])
    (row,) = external_rows(run)
    assert row.wattwise.energy_j is None and row.difference_j is None
    assert row.wattwise.note == "wattwise measured no channel for this GPU"


def test_the_page_shows_ranks_by_host_and_the_counters_with_their_sources() -> None:
    from wattwise.report.build import run_page

    run = distributed()
    page = run_page(run=run, samples=[])
    for part in ('id="chart-ranks"', 'id="ranks"', 'id="chart-external"', 'id="external"', "Cluster counters"):
        assert part in page
    assert RANK_NOTE.replace("'", "&#39;") in page and EXTERNAL_NOTE.replace("'", "&#39;") in page
    for group in hosts(run):
        assert f"{group.host}: 4 ranks" in page and numbers.energy_j(group.energy_j) in page
    assert "2 of 8 ranks did not report to the end" in page
    for rank, status in STATUSES.items():
        assert re.search(rf"rank {rank} on gpu-node-01 is {status} \({re.escape(FLAGGED[status])}", page)
    assert page.count('class="flagged"') == len(STATUSES)
    for row in external_rows(run):
        assert row.figure.detail in page  # every figure's source named
        if row.difference_j is not None:
            sign = "+" if row.difference_j >= 0 else "−"
            assert f"{sign}{numbers.energy_j(abs(row.difference_j))}" in page
    assert "default-src 'none'" in page and "<script" not in page


def test_a_single_process_run_without_counters_has_neither_section() -> None:
    from wattwise.report.build import run_page

    page = run_page(run=gpu_run(), samples=[])
    assert "<h2>Ranks</h2>" not in page and "<h2>Cluster counters</h2>" not in page
    assert 'id="chart-ranks"' not in page and 'id="chart-external"' not in page


def test_many_ranks_are_drawn_per_host() -> None:
    from wattwise.report.charts import rank_chart

    run = gpu_run().replace(ranks=ranks(RANK_BARS + 8, per_host=8))
    chart = rank_chart(build_run_view(run, []))
    assert f"Energy per host ({RANK_BARS + 8} ranks)" in chart and "rank 0" not in chart


def test_the_page_json_carries_hosts_and_counters() -> None:
    data = build_run_view(distributed(), []).to_dict()
    assert [h["host"] for h in data["hosts"]] == ["gpu-node-00", "gpu-node-01"]
    assert data["hosts"][1]["flagged"] == [{"rank": r, "status": s} for r, s in sorted(STATUSES.items())]
    assert [e["source"] for e in data["external"]] == ["dcgm", "dcgm", "kepler", "slurm"]
    assert data["external"][3]["difference_j"] is None and data["external_totals"][0]["scope"] == "all 2 figures"
    assert data["run"]["external"][0]["scope"] == f"gpu 0 {GPU0}"


def test_runs_show_prints_the_ranks_and_the_counters() -> None:
    console = Console(width=200, record=True)
    console.print(run_summary(distributed()))
    text = console.export_text()
    assert "gpu-node-00: 4 rank(s)" in text and "gpu-node-01: 4 rank(s)" in text and "2 flagged" in text
    assert "LOST" in text and "MISSING" in text and "node-wide share" in text
    assert f"dcgm gpu 0 {GPU0}" in text and "gpu:0 (whole GPU)" in text and "dcgm all 2 figures" in text
    assert "rank 7 on gpu-node-01 is missing: it never reported" in text
    missing_row = next(line for line in text.splitlines() if line.strip().startswith("7 "))
    assert "–" in missing_row and " J " not in missing_row


def test_figures_that_may_overlap_are_never_added_up() -> None:
    end = T0 + timedelta(seconds=300)
    figures = (
        ExternalFigure("kepler", "pod ml/train-7f9c", 90_000.0, T0, end, "kepler_container_joules_total"),
        ExternalFigure("kepler", "pod ml/train-7f9c (cpu, dram)", 21_000.0, T0, end, "kepler_pod_cpu_joules_total"),
        ExternalFigure("slurm", "job 4242 on gpu-node-07", 1_843_211.0, None, None, "sacct ConsumedEnergyRaw"),
        ExternalFigure("slurm", "job 4243 on gpu-node-07", 1_500_000.0, None, None, "sacct ConsumedEnergyRaw"),
        *counters()[:2],
    )
    run = gpu_run(uuids=(GPU0, GPU1)).replace(external=figures)
    totals = external_totals(external_rows(run))
    assert [t.figure.source for t in totals] == ["dcgm"]  # two GPUs: they cannot overlap


def test_one_metric_over_two_pods_adds_up_but_wattwise_is_not_counted_twice() -> None:
    end = T0 + timedelta(seconds=300)
    figures = tuple(
        ExternalFigure("kepler", f"pod ml/{pod}", energy, T0, end, "kepler_container_joules_total")
        for pod, energy in (("train-7f9c", 90_000.0), ("loader-2b1c", 12_000.0))
    )
    run = gpu_run().replace(external=figures)
    (total,) = external_totals(external_rows(run))
    assert total.figure.energy_j == pytest.approx(102_000.0)
    assert total.wattwise.energy_j is None and "overlap" in total.wattwise.note  # the run total twice is no sum


def test_the_same_gpu_twice_is_not_added_up() -> None:
    end = T0 + timedelta(seconds=300)
    figures = (
        ExternalFigure("dcgm", f"gpu 0 {GPU0}", 127_500.0, T0, end, "from the exporter"),
        ExternalFigure("dcgm", f"gpu 3 {GPU0}", 127_400.0, T0, end, "from Prometheus"),
    )
    assert external_totals(external_rows(gpu_run().replace(external=figures))) == []


def test_each_source_has_its_own_chart_and_two_kepler_figures_distinct_labels() -> None:
    from wattwise.report.charts import external_chart

    end = T0 + timedelta(seconds=300)
    figures = (
        ExternalFigure("kepler", "pod ml/trainer-0", 90_000.0, T0, end, "kepler_container_joules_total"),
        ExternalFigure("kepler", "pod ml/trainer-0 (cpu, dram)", 21_000.0, T0, end, "kepler_pod_cpu_joules_total"),
        ExternalFigure("slurm", "job 4242 on gpu-node-07", 1_843_211.0, None, None, "sacct ConsumedEnergyRaw"),
    )
    chart = external_chart(build_run_view(gpu_run().replace(external=figures), []))
    assert chart.count("<svg") == 2 and "kepler beside wattwise" in chart and "slurm beside wattwise" in chart
    labels = re.findall(r"<title>([^<]*)</title></text>", chart)
    assert "cpu, dram: ml/trainer-0" in labels and "pod ml/trainer-0" in labels
