"""Print one sweep's records as a table: method, solver@budget, NFE used, metrics, train/sample seconds.

    python3 scripts/sweep_table.py results/<sweep>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    rows = [json.loads(p.read_text()) for p in sorted(Path(folder, "cells").glob("*.json"))]
    rows.sort(key=lambda r: (r["config"]["method"]["name"], r["config"]["solver"],
                             r["config"]["nfe"] or 0))
    for r in rows:
        c, tm = r["config"], r.get("timings", {})
        budget = f"nfe={c['nfe']}" if c["nfe"] else f"tol={c['tol']}"
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(r.get("metrics", {}).items()))
        where = f"{r.get('environment', {}).get('device', '')} {r.get('runtime', {}).get('precision', '')}"
        used = r.get("nfe")
        print(f"{c['method']['name']:<8} {c['solver']:<7} {budget:<10} used={used!s:<5} {metrics:<40} "
              f"train={tm.get('train_seconds', 0):.1f}s sample={tm.get('sample_seconds', 0):.2f}s "
              f"{r['status']} {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
