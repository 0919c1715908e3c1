"""Start-up: process start to a ready default model (imports included), in fresh processes.

"Ready" is the moment `load_model("default")` returns in the child: the clock runs from just
before the parent starts it (interpreter start-up included) to the wall-clock time the child
prints then. The child's exit (freeing memory, atexit hooks) is not part of it.

    python -m bench.load_time
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from bench.train_vs_trl import RESULTS

CHILD = ("import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); "
         "from lab.models import load_model; m, tok = load_model('default'); t2 = time.perf_counter(); "
         "print(time.time(), t1 - t0, t2 - t1, type(m).__name__)")


def main(runs: int = 5) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    walls, parts = [], []
    for _ in range(runs):
        t = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        walls.append(float(out[0]) - t)
        parts.append([float(x) for x in out[1:3]])
        model_class = out[3]
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
              "process_start_to_ready_s": {"median": statistics.median(walls), "min": min(walls),
                                           "max": max(walls)},
              "model_class": model_class,
              "load_average": os.getloadavg()[0],
              "import_torch_s_median": statistics.median(p[0] for p in parts),
              "import_lab_and_load_s_median": statistics.median(p[1] for p in parts)}
    from lab.atomic import write_json
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / "load_time.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
