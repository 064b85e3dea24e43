from __future__ import annotations

import pytest

from wattwise.reduce.base import VariantResult
from wattwise.reduce.render import table_rows


def test_table_and_page_show_every_variant_and_the_front() -> None:
    variants = [
        VariantResult(
            name="fp32", recipe="none", size_bytes=4_000_000, latency_ms=2.0, energy_j_per_inference=0.5, metric=0.97
        ),
        VariantResult(
            name="int8 <dyn>",
            recipe="quantize(" + "x" * 60 + ")",
            size_bytes=1_000_000,
            latency_ms=1.0,
            energy_j_per_inference=0.2,
            metric=0.969,
            pareto=True,
        ),
        VariantResult(name="broken", recipe="lowrank", error="no nn.Linear layers to factorize"),
    ]
    rows = table_rows(variants)
    assert rows[1][0].startswith("★ ") and rows[1][1].endswith("…") and rows[2][-1].startswith("no nn.Linear")
    pytest.importorskip("jinja2")
    from wattwise.report.pages import pareto_page

    page = pareto_page(variants)
    assert page.count("<circle") == 2  # the broken variant has nothing to plot
    assert "int8 &lt;dyn&gt;" in page and "<script" not in page
    assert 'data-points="2"' in page and "Content-Security-Policy" in page
