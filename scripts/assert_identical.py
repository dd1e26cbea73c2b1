"""Exit 1 unless two stores hold bit-identical scores for the same (variant, task, subset, split, metric).

Used by .ci/run to prove that two CPU runs of the smoke suite are deterministic.
"""

from __future__ import annotations

import sys

import evalgemma

KEY = ["variant_key", "task", "hf_subset", "split", "metric"]


def main(a: str, b: str) -> int:
    left = evalgemma.load_results(a).set_index(KEY)["value"].sort_index()
    right = evalgemma.load_results(b).set_index(KEY)["value"].sort_index()
    if left.empty:
        print(f"{a}: no results", file=sys.stderr)
        return 1
    if not left.index.equals(right.index):
        print(f"the stores hold different units: {len(left)} vs {len(right)} rows", file=sys.stderr)
        return 1
    differ = left[(left != right) & ~(left.isna() & right.isna())]
    if len(differ):
        print(f"{len(differ)} of {len(left)} values differ between two identical runs, e.g.\n{differ.head()}", file=sys.stderr)
        return 1
    print(f"identical: {len(left)} values over {left.index.get_level_values('task').nunique()} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
