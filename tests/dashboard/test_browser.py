"""The dashboard and the offline HTML report in a real headless Chromium.

A store of three realistic training runs (CPU and GPU channels sampled every second, five epochs, an early
prediction, an hourly intensity series) is served by uvicorn on a free loopback port; the browser lists the runs,
follows a run's link, ticks two runs and compares them, opens the report file written by ``wattwise report`` with
the network switched off, and meets the token check of a dashboard that requires one. Every plot is checked to
have rendered with data and a visible size; screenshots are saved under the test's tmp_path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard import browser
from wattwise.record_schema import check_run
from wattwise.records import ComponentEnergy, IntensityStep, Prediction, Range, Run, Sample, WindowRecord
from wattwise.report import numbers

_MISSING = browser.missing()
if _MISSING is not None:
    pytest.skip(f"no browser test: {_MISSING}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402  (imported only once selenium is known to be there)
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from wattwise.dashboard.app import create_app  # noqa: E402
from wattwise.dashboard.auth import LOOPBACK_HOSTS  # noqa: E402
from wattwise.store import open_store  # noqa: E402

SECONDS = 300  # samples per channel, one a second
EPOCHS = 5
EPOCH_S = SECONDS // EPOCHS
PUE = 1.2
TOKEN = "x" * 24
CPU, GPU = "cpu:package-0", "gpu:0"
HOURLY_G_PER_KWH = {12: 412.0, 13: 385.0, 14: 356.0, 15: 331.0, 9: 298.0, 10: 276.0}
WAIT_S = 10


@dataclass(frozen=True)
class Spec:
    run_id: str
    name: str
    started_at: datetime
    gpu_w: float  # mean GPU power while training
    cpu_w: float


SPECS = (
    Spec("20250301-125730-a1b2c3", "resnet50-baseline", datetime(2025, 3, 1, 12, 57, 30, tzinfo=UTC), 285.0, 62.0),
    Spec("20250301-135830-d4e5f6", "resnet50-amp", datetime(2025, 3, 1, 13, 58, 30, tzinfo=UTC), 214.0, 58.0),
    Spec("20250302-095900-0a9b8c", "bert-finetune", datetime(2025, 3, 2, 9, 59, 0, tzinfo=UTC), 301.0, 71.0),
)


# --- the store ------------------------------------------------------------------------------------------------


def _intensity_at(moment: datetime) -> float:
    return HOURLY_G_PER_KWH[moment.hour]


def build_run(spec: Spec) -> tuple[Run, list[Sample]]:
    """A finished 5-minute training run: power per second per channel, epochs of 60 s (the last 6 s of each an
    evaluation at lower GPU power), the process charged 90 % of the CPU and all of the GPU, emissions integrated
    over the hourly intensity in force each second."""
    shares = {CPU: 0.9, GPU: 1.0}
    charged = dict.fromkeys(shares, 0.0)
    machine = dict.fromkeys(shares, 0.0)
    per_epoch: list[dict[str, float]] = [dict.fromkeys(shares, 0.0) for _ in range(EPOCHS)]
    epoch_co2e = [0.0] * EPOCHS
    co2e_g = 0.0
    samples: list[Sample] = []
    for t in range(1, SECONDS + 1):
        in_epoch = (t - 1) % EPOCH_S
        evaluating = in_epoch >= EPOCH_S - 6
        epoch = (t - 1) // EPOCH_S
        power = {
            GPU: (0.45 if evaluating else 1.0) * spec.gpu_w + 12.0 * math.sin(t / 7.0) + (25.0 if in_epoch < 3 else 0),
            CPU: spec.cpu_w + 6.0 * math.sin(t / 11.0) + (18.0 if evaluating else 0.0),
        }
        intensity = _intensity_at(spec.started_at + timedelta(seconds=t - 0.5))
        for channel, watts in power.items():
            machine[channel] += watts
            charged[channel] += watts * shares[channel]
            per_epoch[epoch][channel] += watts * shares[channel]
            grams = watts * shares[channel] * PUE / 3.6e6 * intensity
            co2e_g += grams
            epoch_co2e[epoch] += grams
            samples.append(Sample(float(t), channel, watts, charged[channel]))
    components = (
        ComponentEnergy(CPU, "cpu", charged[CPU], machine[CPU], "measured", "rapl", "Intel Xeon Gold 6338"),
        ComponentEnergy(GPU, "gpu", charged[GPU], machine[GPU], "measured", "nvml-energy-counter", "NVIDIA A100"),
    )
    energy_j = sum(c.energy_j for c in components)
    windows = tuple(
        WindowRecord(
            name=f"epoch-{k + 1}",
            started_at=spec.started_at + timedelta(seconds=k * EPOCH_S),
            duration_s=float(EPOCH_S),
            energy_j=sum(per_epoch[k].values()),
            co2e_g=epoch_co2e[k],
            components=dict(per_epoch[k]),
        )
        for k in range(EPOCHS)
    )
    first = windows[0].energy_j * EPOCHS
    end = spec.started_at + timedelta(seconds=SECONDS)
    hours = sorted({spec.started_at.replace(minute=0, second=0), end.replace(minute=0, second=0)})
    run = Run(
        id=spec.run_id,
        name=spec.name,
        status="complete",
        started_at=spec.started_at,
        ended_at=end,
        duration_s=float(SECONDS),
        energy_j=energy_j,
        machine_energy_j=sum(c.machine_energy_j for c in components),
        co2e_g=co2e_g,
        region="DE",
        intensity_g_per_kwh=co2e_g / (energy_j * PUE / 3.6e6),
        intensity_source="electricitymaps:DE (hourly)",
        pue=PUE,
        attribution="process",
        components=components,
        windows=windows,
        prediction=Prediction(
            epochs_done=1,
            epochs_planned=EPOCHS,
            energy_j=Range(first, first * 0.85, first * 1.15),
            duration_s=Range(float(SECONDS), SECONDS * 0.85, SECONDS * 1.15),
            co2e_g=Range(epoch_co2e[0] * EPOCHS, epoch_co2e[0] * EPOCHS * 0.85, epoch_co2e[0] * EPOCHS * 1.15),
            method="epoch-mean",
        ),
        command=("python", "train.py", "--epochs", str(EPOCHS)),
        exit_code=0,
        host="gpu-node-07",
        pid=4242,
        wattwise_version="0.1.0",
        emissions_method="time-resolved",
        water_onsite_l=energy_j / 3.6e6 * 1.8,
        water_offsite_l=energy_j * PUE / 3.6e6 * 2.1,
        water_source="WRI Aqueduct (DE)",
        intensity_series=tuple(IntensityStep(hour, 3600.0, _intensity_at(hour)) for hour in hours),
    )
    check_run(run)  # the store's own rules: totals are the sums of the components, and so on
    return run, samples


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return [build_run(spec)[0] for spec in SPECS]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-store") / "runs.db"
    with open_store(str(path)) as store:
        for spec in SPECS:
            run, samples = build_run(spec)
            store.begin(run)
            for start in range(0, len(samples), 200):  # as the tracker writes them: in batches
                store.append_samples(run.id, samples[start : start + 200])
            store.save(run)
    return path


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with browser.chrome() as opened:
        yield opened


@pytest.fixture(scope="module")
def dashboard(db: Path) -> Iterator[browser.LiveServer]:
    """The dashboard over the store, as ``wattwise dashboard`` serves it on loopback (no token, Host checked)."""
    store = open_store(str(db), read_only=True)
    try:
        app = create_app(store, store_label=str(db), allowed_hosts=LOOPBACK_HOSTS)
        with browser.serve_in_thread(app) as live:
            yield live
    finally:
        store.close()


@pytest.fixture(scope="module")
def token_dashboard(db: Path) -> Iterator[browser.LiveServer]:
    store = open_store(str(db), read_only=True)
    try:
        app = create_app(store, token=TOKEN, store_label=str(db))
        with browser.serve_in_thread(app) as live:
            yield live
    finally:
        store.close()


@pytest.fixture(autouse=True)
def fresh_logs(driver: Any) -> Iterator[None]:
    """Each test reads only its own requests and console messages, at the usual window size."""
    driver.set_window_size(1280, 900)
    driver.get_log("performance")
    driver.get_log("browser")
    yield


# --- helpers ------------------------------------------------------------------------------------------------


def wait_for(driver: Any, css: str) -> Any:
    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def points(element: Any) -> int:
    return int(element.get_attribute("data-points") or "0")


def check_chart(svg: Any, where: str) -> None:
    """A chart that rendered: data points drawn, and a visible size on the page."""
    label = svg.get_attribute("aria-label")
    assert points(svg) > 0, f"{where}: chart {label!r} draws no data"
    size = svg.size
    assert size["width"] > 100 and size["height"] > 50, f"{where}: chart {label!r} has size {size}"
    assert svg.is_displayed(), f"{where}: chart {label!r} is not displayed"


# Labels of one chart whose boxes overlap (axis ticks, legend entries, the title, category names): the pairs'
# texts, so a failure says which labels collide.
OVERLAPS_JS = """
const svg = arguments[0];
const boxes = Array.from(svg.querySelectorAll('text')).map(t => [t.textContent, t.getBoundingClientRect()]);
const out = [];
for (let i = 0; i < boxes.length; i++) {
  for (let j = i + 1; j < boxes.length; j++) {
    const [ta, a] = boxes[i], [tb, b] = boxes[j];
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) out.push([ta, tb]);
  }
}
const frame = svg.getBoundingClientRect();
const outside = Array.from(svg.querySelectorAll('text')).filter(t => {
  const r = t.getBoundingClientRect();
  return r.width > 0 && (r.left < frame.left - 1 || r.right > frame.right + 1);
}).map(t => t.textContent);
return {overlaps: out, outside: outside};
"""


def label_problems(driver: Any, svg: Any) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = driver.execute_script(OVERLAPS_JS, svg)
    return result


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def full_page_screenshot(driver: Any, path: Path) -> None:
    """The whole page in one PNG: the window made as tall as the document first."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height + 160, 900), 8000))  # + the window's own frame
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(1280, 900)
    assert path.stat().st_size > 10_000, f"{path.name} is only {path.stat().st_size} bytes"


def screenshot(driver: Any, path: Path) -> None:
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{path.name} is only {path.stat().st_size} bytes"


# --- the tests ------------------------------------------------------------------------------------------------


def test_runs_page_lists_the_runs_and_a_run_link_opens_its_plots(
    driver: Any, dashboard: browser.LiveServer, runs: list[Run], tmp_path: Path
) -> None:
    driver.get(dashboard.url + "/")
    table = wait_for(driver, "table#runs")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "a.run-link").text for r in rows] == [
        "bert-finetune",
        "resnet50-amp",
        "resnet50-baseline",
    ], "newest first"
    by_name = {run.name: run for run in runs}
    for row in rows:
        run = by_name[row.find_element(By.CSS_SELECTOR, "a.run-link").text]
        text = row.text
        assert run.id in text
        assert numbers.energy_j(run.energy_j) in text, f"{run.name}: energy not shown as in the record: {text!r}"
        assert numbers.mass_g(run.co2e_g) in text, f"{run.name}: CO2e not shown as in the record: {text!r}"
        assert "5m00s" in text and "complete" in text and "measured" in text
    screenshot(driver, tmp_path / "runs.png")

    run = by_name["resnet50-baseline"]
    link = driver.find_element(By.XPATH, f"//a[@class='run-link' and text()='{run.name}']")
    link.click()
    WebDriverWait(driver, WAIT_S).until(ec.url_to_be(f"{dashboard.url}/runs/{run.id}"))
    power = wait_for(driver, "#chart-power svg")
    assert run.name in driver.find_element(By.TAG_NAME, "h1").text
    cards = driver.find_element(By.CSS_SELECTOR, ".cards").text
    assert numbers.energy_j(run.energy_j) in cards and numbers.mass_g(run.co2e_g) in cards

    check_chart(power, "run page")
    series = power.find_elements(By.CSS_SELECTOR, "polyline.ww-series")
    assert len(series) == 2, "one line per channel (cpu and gpu)"
    assert [points(s) for s in series] == [SECONDS, SECONDS], "300 samples a channel: all drawn, none thinned"
    assert points(power) == 2 * SECONDS
    assert f"{2 * SECONDS} samples stored" in driver.find_element(By.TAG_NAME, "main").text

    windows = driver.find_element(By.CSS_SELECTOR, "#chart-windows svg")
    check_chart(windows, "run page")
    bars = windows.find_elements(By.CSS_SELECTOR, "rect.ww-bar")
    assert len(bars) == EPOCHS * 2, "a bar segment per epoch and channel"
    assert all(bar.size["height"] > 0 and bar.size["width"] > 0 for bar in bars)
    labels = [t.text for t in windows.find_elements(By.CSS_SELECTOR, "text")]
    assert all(f"epoch-{k}" in labels for k in range(1, EPOCHS + 1)), labels

    charts = driver.find_elements(By.CSS_SELECTOR, "svg.ww-chart")
    ids = [c.find_element(By.XPATH, "..").get_attribute("id") for c in charts]
    assert ids == [
        "chart-power",
        "chart-components",
        "chart-windows",
        "chart-window-emissions",
        "chart-prediction",
        "chart-intensity",
    ]
    main_width = driver.find_element(By.TAG_NAME, "main").size["width"]
    for chart in charts:
        check_chart(chart, "run page")
        assert chart.size["width"] <= main_width, "a chart wider than the page"
        problems = label_problems(driver, chart)
        assert problems == {"overlaps": [], "outside": []}, f"{chart.get_attribute('aria-label')}: {problems}"
    intensity = driver.find_element(By.CSS_SELECTOR, "#chart-intensity polyline.ww-series")
    assert points(intensity) == 4, "two hourly steps, each drawn from its start to its end within the run"

    sent = browser.requests_sent(driver)
    assert sent and all(url.startswith(dashboard.url + "/") for url in sent), sent
    assert console_errors(driver) == []
    full_page_screenshot(driver, tmp_path / "run.png")


def test_two_ticked_runs_are_compared(
    driver: Any, dashboard: browser.LiveServer, runs: list[Run], tmp_path: Path
) -> None:
    first, second, third = runs
    driver.get(dashboard.url + "/")
    wait_for(driver, "table#runs")
    for run in (first, second):
        box = driver.find_element(By.CSS_SELECTOR, f"#runs input[type=checkbox][value='{run.id}']")
        box.click()
        assert box.is_selected()
    driver.find_element(By.XPATH, "//button[text()='compare the ticked runs']").click()
    WebDriverWait(driver, WAIT_S).until(ec.url_contains("/compare?"))
    energy = wait_for(driver, "#chart-energy svg")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Comparing 2 runs"
    figures = driver.find_element(By.CSS_SELECTOR, "main table").text
    for run in (first, second):
        assert run.name in figures and run.id in figures
        assert numbers.energy_j(run.energy_j) in figures, f"{run.name}: energy not shown as in the record"
    assert third.name not in figures and third.id not in figures
    check_chart(energy, "compare page")
    bars = energy.find_elements(By.CSS_SELECTOR, "rect.ww-bar")
    assert len(bars) >= 2 and all(bar.size["height"] > 0 for bar in bars)
    titles = " ".join(bar.find_element(By.TAG_NAME, "title").get_attribute("textContent") for bar in bars)
    assert first.name in titles and second.name in titles
    for chart in driver.find_elements(By.CSS_SELECTOR, "svg.ww-chart"):
        check_chart(chart, "compare page")
        problems = label_problems(driver, chart)
        assert problems == {"overlaps": [], "outside": []}, f"{chart.get_attribute('aria-label')}: {problems}"
    for link in driver.find_elements(By.CSS_SELECTOR, "main table thead a"):
        assert link.get_attribute("href").startswith(f"{dashboard.url}/runs/")
    assert console_errors(driver) == []
    full_page_screenshot(driver, tmp_path / "compare.png")


def test_the_html_report_renders_every_plot_offline(
    driver: Any, db: Path, runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattwise.cli.main import main

    run = runs[1]
    report = tmp_path / "report.html"
    assert main(["report", run.id, "--html", str(report), "--db", str(db)]) == 0
    assert "report written to" in capsys.readouterr().out
    url = report.resolve().as_uri()

    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    try:
        driver.get_log("performance")
        driver.get(url)
        wait_for(driver, "svg.ww-chart")
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.ww-chart")
        assert len(charts) >= 4
        for chart in charts:
            check_chart(chart, "report")
            problems = label_problems(driver, chart)
            assert problems == {"overlaps": [], "outside": []}, f"{chart.get_attribute('aria-label')}: {problems}"
        assert len(charts) == 6
        assert run.name in driver.find_element(By.TAG_NAME, "h1").text
        assert numbers.energy_j(run.energy_j) in driver.find_element(By.CSS_SELECTOR, ".cards").text
        assert driver.find_elements(By.CSS_SELECTOR, "header.site") == [], "a report file has no dashboard header"
        sent = browser.requests_sent(driver)
        assert url in sent, f"the performance log missed the page itself: {sent}"
        assert [u for u in sent if u != url and not u.startswith("data:")] == [], sent
        assert console_errors(driver) == [], "a blocked request or a CSP violation"
        full_page_screenshot(driver, tmp_path / "report.png")
    finally:
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )


def test_a_dashboard_with_a_token_shows_nothing_without_it(
    driver: Any, token_dashboard: browser.LiveServer, runs: list[Run], tmp_path: Path
) -> None:
    base = token_dashboard.url
    cookie_name = f"wattwise_token_{base.rsplit(':', 1)[1]}"  # named after the port: ports share cookies
    driver.get(base + "/")
    driver.delete_all_cookies()  # cookies are per host, not per port: start from none
    driver.get(base + "/")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "token" in body
    assert not any(run.name in body or run.id in body for run in runs), body

    driver.get(f"{base}/?token={'y' * 24}")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "wrong token" in body and not any(run.name in body for run in runs)
    assert driver.get_cookie(cookie_name) is None

    driver.get(f"{base}/?token={TOKEN}")
    table = wait_for(driver, "table#runs")
    assert driver.current_url == base + "/", "the token is dropped from the address bar"
    names = [a.text for a in table.find_elements(By.CSS_SELECTOR, "a.run-link")]
    assert sorted(names) == sorted(run.name for run in runs)
    cookie = driver.get_cookie(cookie_name)
    assert cookie is not None and cookie["value"] == TOKEN
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    screenshot(driver, tmp_path / "token-runs.png")

    table.find_element(By.CSS_SELECTOR, "a.run-link").click()  # the cookie carries the token from page to page
    check_chart(wait_for(driver, "#chart-power svg"), "run page behind the token")

    driver.delete_all_cookies()
    driver.get(base + "/")
    assert "token" in driver.find_element(By.TAG_NAME, "body").text
    assert driver.find_elements(By.CSS_SELECTOR, "table#runs") == []
