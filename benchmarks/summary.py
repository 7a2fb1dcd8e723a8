"""What every benchmark records: the commit and machine, and the headline figures in
``benchmarks/results/speed_summary.json`` (speed, issue 22) and ``benchmarks/results/quality_summary.json``
(quality, issue 21).

Each script owns its keys and rewrites only them (read-modify-write), with the date and the commit of the run, so a
command can check the headline ratios without reading every script's own JSON.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPEED_SUMMARY = os.path.join(HERE, "results", "speed_summary.json")
QUALITY_SUMMARY = os.path.join(HERE, "results", "quality_summary.json")


def commit() -> str:
    """The checkout's commit, marked ``+dirty`` where tracked files other than the results differ from it (a
    script that has written its own results file is still measuring the commit's code)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!benchmarks/results"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def machine() -> str:
    """Architecture, cores and kernel of this machine, as the results files record them."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def update_summary(values: dict, path: str = SPEED_SUMMARY) -> None:
    """Sets ``values`` (and ``date``, ``commit``) in the summary file, keeping the other scripts' keys."""
    summary = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    summary.update(values, date=datetime.date.today().isoformat(), commit=commit())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
