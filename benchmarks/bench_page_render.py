"""Dashboard render speed: server-side rerun time of every page from stored results (AppTest, median of
several warm reruns) and of scrubbing the audit page's budget slider across every completed budget,
against the 300 ms target; the Home page, measured in the same run, is the baseline ratio.

    python benchmarks/bench_page_render.py [--repeats 7] [--against HEAD]

``--against REF`` also measures the audit page of git revision REF (exported with ``git archive`` to a temporary
folder and rendered there, in a subprocess importing that tree's own fairlin_core) in the same run, and prints
this tree's audit render over REF's (the render budget: at most 1.2).

Each page is opened once first (the cold open reads the results and builds the figures, and is printed
separately); the timed reruns then find the caches warm, which is what a user clicking around sees.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = {"Home": "pages/home.py", "Models & data": "pages/models_data.py", "Linearize": "pages/linearize.py",
         "Fairness audit": "pages/audit.py", "Why (diagnostics)": "pages/why.py", "Toy lab": "pages/toy_lab.py"}
TARGET = 0.300


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def audit_render(app: str, repeats: int) -> float:
    """Median warm rerun (s) of the audit page of the app at ``app``."""
    at = AppTest.from_file(app, default_timeout=300)
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception, at.exception
    return statistics.median(timed(at.run) for _ in range(repeats))


def audit_render_at(ref: str, repeats: int) -> float:
    """The audit page's median warm rerun (s) at git revision ``ref``, measured in a subprocess on that tree."""
    repo = Path(APP).parent
    folder = Path(tempfile.mkdtemp(prefix="fairlin_bench_ref_"))
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    env = {**os.environ, "PYTHONPATH": str(folder), "FAIRLIN_AUDIT_RESULTS": str(folder / "results" / "default_audit")}
    out = subprocess.run([sys.executable, __file__, "--audit-only", str(folder / "app.py"), "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True, env=env, cwd=folder).stdout
    return json.loads(out.strip().splitlines()[-1])["audit_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--against", metavar="REF", help="also measure the audit page of this git revision")
    parser.add_argument("--audit-only", metavar="APP", help=argparse.SUPPRESS)  # the subprocess of --against
    args = parser.parse_args()
    os.environ.setdefault("FAIRLIN_STORE", tempfile.mkdtemp(prefix="fairlin_bench_store_"))
    if args.audit_only:
        print(json.dumps({"audit_s": audit_render(args.audit_only, args.repeats)}))
        return
    if args.against:
        before = audit_render_at(args.against, args.repeats)
        now = audit_render(APP, args.repeats)
        print(f"audit page warm median: {args.against} {before * 1000:.0f} ms, this tree {now * 1000:.0f} ms, "
              f"ratio {now / before:.2f} (budget 1.2)")
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    medians = {}
    for name, page in PAGES.items():
        cold = timed(lambda: at.switch_page(page).run())
        assert not at.exception, at.exception
        medians[name] = statistics.median(timed(at.run) for _ in range(args.repeats))
        print(f"{name:18s} cold {cold * 1000:7.0f} ms   warm median {medians[name] * 1000:6.0f} ms   "
              f"ratio to target {medians[name] / TARGET:.2f}")
    baseline = medians["Home"]
    for name in ("Fairness audit", "Why (diagnostics)"):
        print(f"{name} / Home: {medians[name] / baseline:.2f}")

    at.switch_page(PAGES["Fairness audit"]).run()
    slider = at.select_slider(key="audit.budget")
    budgets = list(slider.options)
    first = [timed(lambda b=b: at.select_slider(key="audit.budget").set_value(b).run()) for b in budgets]
    again = [timed(lambda b=b: at.select_slider(key="audit.budget").set_value(b).run())
             for _ in range(max(1, args.repeats // len(budgets) + 1)) for b in budgets]
    print(f"budget scrub over {budgets}: first visit median {statistics.median(first) * 1000:.0f} ms "
          f"(max {max(first) * 1000:.0f}), revisits median {statistics.median(again) * 1000:.0f} ms, "
          f"ratio to target {statistics.median(again) / TARGET:.2f}")


if __name__ == "__main__":
    main()
