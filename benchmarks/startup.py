"""Start-up time of the CLI against two baselines measured in the same run.

Goals:

* `rdm --help`, `rdm plugins`, `rdm encoders` and `rdm recipes` each under 1.5x
  `python -c "import torch"` (heavy libraries stay lazy);
* `rdm validate RECIPE` under 1.5x `rdm plugins` (factory signatures are read from source, so
  validating imports neither torch nor any model library).

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import save, table

RDM = [sys.executable, "-m", "rdm_core"]
COMMANDS = {
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "rdm --help": [*RDM, "--help"],
    "rdm plugins": [*RDM, "plugins"],
    "rdm encoders": [*RDM, "encoders"],
    "rdm recipes": [*RDM, "recipes"],
    "rdm validate digits-cpu": [*RDM, "validate", "digits-cpu"],
    "rdm validate wan-tiny (extends)": [*RDM, "validate", "wan-tiny"],
    "rdm validate flux2-klein-tiny (extends)": [*RDM, "validate", "flux2-klein-tiny"],
}
TORCH_BASELINE = "python -c 'import torch' (baseline)"
PLUGINS_BASELINE = "rdm plugins"


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache once
        wall(cmd)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved so background load hits every command alike
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    torch_base = statistics.median(times[TORCH_BASELINE])
    plugins_base = statistics.median(times[PLUGINS_BASELINE])
    rows = [
        {
            "command": name,
            "median_s": statistics.median(t),
            "min_s": min(t),
            "ratio_to_import_torch": statistics.median(t) / torch_base,
            "ratio_to_rdm_plugins": statistics.median(t) / plugins_base,
        }
        for name, t in times.items()
    ]
    goals = {"import_torch": 1.5, "validate_to_rdm_plugins": 1.5}
    path = save("startup", {"repeats": args.repeats, "goal_ratio": goals, "rows": rows})
    print(table(rows, ["command", "median_s", "min_s", "ratio_to_import_torch", "ratio_to_rdm_plugins"]))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
