"""Write ``results/reference/suite_cells.parquet``: every cell of the three MTEB suites, from mteb itself.

A cell is (task, split, hf_subset) as ``mteb.get_benchmark(name)`` filters the task (the benchmark's
own subsets and splits), with the task type and version (the dataset revision the task pins) and its
position in mteb's evaluation order. Views read this file to know a suite's expected cells without
importing mteb; ``tests/test_suite_cells.py`` checks it equals mteb's definitions.

    python scripts/build_suite_cells.py [--out results/reference/suite_cells.parquet]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "harness"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "reference" / "suite_cells.parquet")
    args = parser.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evalgemma.benchmarks.suites import mteb_suite_cells
    from evalgemma.io import atomic_write

    table = pa.Table.from_pylist(mteb_suite_cells())
    atomic_write(args.out, lambda fh: pq.write_table(table, fh, compression="zstd"))
    print(f"{args.out}: {table.num_rows} cells")


if __name__ == "__main__":
    main()
