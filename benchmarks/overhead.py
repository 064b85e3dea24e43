"""What measuring costs: wall-time and CPU overhead of wattwise vs CodeCarbon on the same CPU-bound job.

Each condition runs the same fixed amount of work (calibrated to ~10 s untracked) in a fresh interpreter, so
start-up and shut-down are included; conditions are interleaved over several repetitions and compared as
ratios to the untracked runs of the same round. Also prints ``import wattwise`` time and the memory of a
one-hour run simulated with accelerated sampling (3,600 ticks), which must stay flat.

    python benchmarks/overhead.py [--seconds 10] [--reps 5] [--codecarbon-python PATH]

CodeCarbon is installed for the benchmark only (``pip install codecarbon==3.3.2``, best in a separate venv
given with ``--codecarbon-python``); without it that row is skipped and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORK = textwrap.dedent(
    """
    def work(n):
        acc = 0
        for i in range(n):
            acc = (acc * 31 + i) % 1000003
        return acc
    """
)

CONDITIONS = {
    "untracked": "{work}\nwork({n})\n",
    "wattwise (API)": "{work}\nimport wattwise\nwith wattwise.track('overhead'):\n    work({n})\n",
    "codecarbon": (
        "{work}\nimport logging\nfrom codecarbon import OfflineEmissionsTracker\n"
        "t = OfflineEmissionsTracker(country_iso_code='USA', save_to_file=False, log_level='error')\n"
        "t.start()\nwork({n})\nt.stop()\n"
    ),
}


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the child and everything it waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: {err[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def calibrate(seconds: float) -> int:
    n = 200_000
    exec(WORK, globals())  # defines work()
    while True:
        t = time.perf_counter()
        work(n)  # type: ignore[name-defined]  # noqa: F821
        dt = time.perf_counter() - t
        if dt > 0.5:
            return int(n * seconds / dt)
        n *= 2


def fixed_costs(env: dict[str, str], reps: int = 15) -> list[tuple[str, float, float]]:
    """Start-up + shut-down alone, and the sampler's cost per second, measured without the noisy workload.

    Each pair runs interleaved ``reps`` times; the rows are median differences (tracked − untracked)."""
    py = sys.executable
    pairs = {
        "API start+stop (import included)": (
            [py, "-c", "import wattwise\nwith wattwise.track('fixed'):\n    pass"],
            [py, "-c", "pass"],
        ),
        "CLI start+stop (an interpreter more)": (
            [py, "-m", "wattwise", "run", "--quiet", "--", "/bin/true"],
            ["/bin/true"],
        ),
        "API over a 10 s sleep (fixed + 10 ticks)": (
            [py, "-c", "import time, wattwise\nwith wattwise.track('idle'):\n    time.sleep(10)"],
            [py, "-c", "import time\ntime.sleep(10)"],
        ),
    }
    rows = []
    for label, (tracked, base) in pairs.items():
        n = 3 if "sleep" in label else reps
        walls, cpus = [], []
        for _ in range(n):
            w1, c1 = run_child(tracked, env)
            w0, c0 = run_child(base, env)
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
        rows.append((label, statistics.median(walls), statistics.median(cpus)))
    return rows


def import_time(python: str, env: dict[str, str], reps: int = 7) -> float:
    code = "import time; t=time.perf_counter(); import wattwise; print(time.perf_counter()-t)"
    values = [float(subprocess.check_output([python, "-c", code], env=env, text=True)) for _ in range(reps)]
    return statistics.median(values)


def memory_flat(env: dict[str, str]) -> list[tuple[int, float, float]]:
    """Run 3,600 sampling ticks 10 ms apart; RSS and traced memory after each simulated 10 minutes."""
    code = textwrap.dedent(
        """
        import json, resource, time, tracemalloc
        import wattwise
        tracemalloc.start()
        t = wattwise.track('memory', interval_s=0.01, flush_s=0.5)
        t.start()
        out = []
        ticks_per_10min = 600
        for k in range(1, 7):
            while t.ticks < k * ticks_per_10min:
                time.sleep(0.05)
            cur, _ = tracemalloc.get_traced_memory()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out.append((k * 10, rss, cur / 1e6))
        t.stop()
        print(json.dumps(out))
        """
    )
    return [tuple(row) for row in json.loads(subprocess.check_output([sys.executable, "-c", code], env=env))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--codecarbon-python", default=sys.executable)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wattwise-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(tmp / "home"))
    have_cc = (
        subprocess.run(
            [args.codecarbon_python, "-c", "import codecarbon"], env=env, capture_output=True, check=False
        ).returncode
        == 0
    )
    n = calibrate(args.seconds)
    print(
        f"workload: {n:,} iterations (~{args.seconds:.0f} s untracked); {args.reps} interleaved repetitions; "
        f"{os.cpu_count()} CPUs"
    )
    if not have_cc:
        print(
            f"codecarbon is not importable by {args.codecarbon_python}: its row is skipped "
            "(pip install codecarbon==3.3.2, or pass --codecarbon-python)"
        )

    cli_script = tmp / "work.py"
    cli_script.write_text(f"{WORK}\nwork({n})\n")
    conditions: dict[str, list[str]] = {
        name: [
            args.codecarbon_python if name == "codecarbon" else sys.executable,
            "-c",
            code.format(work=WORK, n=n),
        ]
        for name, code in CONDITIONS.items()
        if name != "codecarbon" or have_cc
    }
    conditions["wattwise run (CLI)"] = [
        sys.executable,
        "-m",
        "wattwise",
        "run",
        "--quiet",
        "--",
        sys.executable,
        str(cli_script),
    ]
    conditions["wattwise run: bare python"] = [sys.executable, str(cli_script)]  # the CLI's own baseline
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in conditions}
    order = list(conditions)
    shuffle = random.Random(2026).shuffle
    for rep in range(args.reps):
        shuffle(order)  # a fixed order would favour whichever condition runs in the same slot each round
        for name in order:
            results[name].append(run_child(conditions[name], env))
        print(f"  repetition {rep + 1}/{args.reps} done", flush=True)

    base_wall = [w for w, _ in results["untracked"]]
    print()
    print(f"{'condition':28} {'wall s (median)':>16} {'overhead':>10} {'extra wall s':>13} {'extra CPU s':>12}")
    for name, rows in results.items():
        if name == "wattwise run: bare python":
            continue
        ref = results["wattwise run: bare python"] if "CLI" in name else results["untracked"]
        ref_wall, ref_cpu = [w for w, _ in ref], [c for _, c in ref]
        extra_wall = [w - b for (w, _), b in zip(rows, ref_wall, strict=True)]
        extra_cpu = [c - b for (_, c), b in zip(rows, ref_cpu, strict=True)]
        ratio = statistics.median([w / b for (w, _), b in zip(rows, ref_wall, strict=True)]) - 1
        print(
            f"{name:28} {statistics.median(w for w, _ in rows):16.3f} {ratio * 100:9.2f}% "
            f"{statistics.median(extra_wall):13.3f} {statistics.median(extra_cpu):12.3f}"
        )
    spread = (max(base_wall) - min(base_wall)) / statistics.median(base_wall) * 100
    print(f"(untracked wall spread across repetitions: {spread:.1f}% — overheads below that are within noise)")

    print()
    print("fixed costs, measured apart from the workload (median differences, interleaved):")
    print(f"{'':44} {'extra wall ms':>14} {'extra CPU ms':>13}")
    for label, wall, cpu in fixed_costs(env):
        print(f"{label:44} {wall * 1000:14.1f} {cpu * 1000:13.1f}")
    print()
    print(f"import wattwise: {import_time(sys.executable, env) * 1000:.0f} ms (median of 7 fresh interpreters)")
    if not args.skip_memory:
        print()
        print("one-hour run simulated with 3,600 sampling ticks at 10 ms (samples flushed every 0.5 s):")
        print(f"{'simulated minutes':>18} {'peak RSS MB':>12} {'traced Python MB':>17}")
        for minutes, rss, traced in memory_flat(env):
            print(f"{minutes:18d} {rss:12.1f} {traced:17.2f}")


if __name__ == "__main__":
    main()
