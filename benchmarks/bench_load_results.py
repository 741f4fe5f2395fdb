"""Loading audit results: the old loader (one CSV per table, every table read up front) against today's
:func:`fairlin_core.audits.results.load_results` (Parquet tables, density and attributions read on first
access), on the shipped default audit, in one process; medians of several warm runs and their ratio.

    python benchmarks/bench_load_results.py [--repeats 7] [--folder results/default_audit]
    python -m benchmarks.bench_load_results

The old format is rebuilt in a temporary folder from the shipped results with the old ``save`` (CSV,
7 significant digits: what the shipped folder held before), so both loaders read the same tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.timing import best_time
from fairlin_core.audits.results import SHIPPED_AUDIT
from fairlin_core.audits.results import AuditResults, load_results
from fairlin_core.audits.results_io import LAZY_TABLES, TABLES, TEXT_COLUMNS, columns_of
from fairlin_core.errors import FairLinError

TARGET = 0.5  # seconds


# -- the old code path, kept as it was (fairlin_core/audits/results.py before the Parquet tables) -------------

def old_save(results: AuditResults, folder: Path) -> None:
    """AuditResults.save as it was: every table as NAME.csv (the JSON files are copied as they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        getattr(results, name).to_csv(folder / f"{name}.csv", index=False, float_format="%.7g")


def old_load_results(folder: Path) -> AuditResults:
    """load_results as it was: read_csv of every table, then AuditResults.from_tables."""
    folder = Path(folder)
    missing = [f"{n}.csv" for n in TABLES if not (folder / f"{n}.csv").is_file()]
    missing += [f"{n}.json" for n in ("configs", "meta") if not (folder / f"{n}.json").is_file()]
    if missing:
        raise FairLinError(f"{folder} is not an audit results folder: {', '.join(missing)} missing; expected the "
                           f"files written by `python -m fairlin_core default-audit`")
    try:
        tables = {name: pd.read_csv(folder / f"{name}.csv", dtype={c: t for c, t in TEXT_COLUMNS.items()
                                                                    if c in columns_of(name)})
                  for name in TABLES}
        configs = json.loads((folder / "configs.json").read_text())
        meta = json.loads((folder / "meta.json").read_text())
    except (ValueError, pd.errors.ParserError) as error:
        raise FairLinError(f"{folder} holds a damaged audit results file ({error}); regenerate it with "
                           f"`python -m fairlin_core default-audit`") from None
    group_sizes = tables.pop("group_sizes")
    return AuditResults.from_tables(tables, group_sizes=group_sizes, configs=configs, meta=meta)


# ---------------------------------------------------------------------------------------------------------

def median_time(fn, repeats: int) -> float:
    """Median of ``repeats`` single timed calls (after one untimed warm-up call)."""
    fn()
    return statistics.median(best_time(fn, 1)[0] for _ in range(repeats))


def folder_size(folder: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in suffixes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--folder", type=Path, default=SHIPPED_AUDIT, help="a results folder in the new format")
    args = parser.parse_args()
    results = load_results(args.folder, lazy=False)
    with tempfile.TemporaryDirectory(prefix="fairlin_bench_load_") as tmp:
        csv_folder = Path(tmp) / "csv"
        old_save(results, csv_folder)
        for name in ("configs", "meta"):
            shutil.copy(args.folder / f"{name}.json", csv_folder / f"{name}.json")
        old = old_load_results(csv_folder)
        for name in TABLES:  # both loaders give the same tables
            pd.testing.assert_frame_equal(getattr(old, name), getattr(results, name), obj=name)

        def new_and_detail():
            loaded = load_results(args.folder)
            return [getattr(loaded, name) for name in LAZY_TABLES]

        timings = {
            "old loader (CSV, every table)": median_time(lambda: old_load_results(csv_folder), args.repeats),
            "load_results (Parquet, lazy)": median_time(lambda: load_results(args.folder), args.repeats),
            "load_results (Parquet, eager)": median_time(lambda: load_results(args.folder, lazy=False),
                                                         args.repeats),
            "load_results + first density/attributions access": median_time(new_and_detail, args.repeats),
            "load_results of the old CSV folder (lazy)": median_time(lambda: load_results(csv_folder), args.repeats),
        }
        csv_bytes = folder_size(csv_folder, (".csv", ".json"))
    new_bytes = folder_size(args.folder, (".parquet", ".json"))
    width = max(map(len, timings))
    for label, seconds in timings.items():
        print(f"{label:{width}s}  median {seconds * 1000:8.1f} ms")
    old_time, new_time = timings["old loader (CSV, every table)"], timings["load_results (Parquet, lazy)"]
    print(f"ratio old / new: {old_time / new_time:.1f}x  (eager Parquet: "
          f"{old_time / timings['load_results (Parquet, eager)']:.1f}x); new load {new_time:.3f} s "
          f"against the {TARGET} s target")
    print(f"folder size: CSV {csv_bytes / 1e6:.2f} MB, Parquet {new_bytes / 1e6:.2f} MB (tables + JSON)")


if __name__ == "__main__":
    main()
