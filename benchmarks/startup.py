"""Start-up time of the CLI against `python -c "import torch"`, measured in the same run.

Goal (issue 2): `rdm --help`, `rdm plugins` and `rdm encoders` each under 1.5x the baseline, i.e.
heavy libraries (timm, open_clip, transformers, diffusers) stay lazy.

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import save, table

COMMANDS = {
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "rdm --help": [sys.executable, "-m", "rdm_core", "--help"],
    "rdm plugins": [sys.executable, "-m", "rdm_core", "plugins"],
    "rdm encoders": [sys.executable, "-m", "rdm_core", "encoders"],
    "rdm recipes": [sys.executable, "-m", "rdm_core", "recipes"],
}


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
    base = statistics.median(next(iter(times.values())))
    rows = [
        {
            "command": name,
            "median_s": statistics.median(t),
            "min_s": min(t),
            "ratio_to_import_torch": statistics.median(t) / base,
        }
        for name, t in times.items()
    ]
    path = save("startup", {"repeats": args.repeats, "goal_ratio": 1.5, "rows": rows})
    print(table(rows, ["command", "median_s", "min_s", "ratio_to_import_torch"]))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
