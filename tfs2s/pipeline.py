"""Steps shared by the pipeline scripts in ``pipelines/``: train, load the trained run, export, use the export.

Each script is then only what is particular to its application (which metrics, which samples).
"""

from __future__ import annotations

import argparse
import json
import os

from tfs2s.cli import main, quiet_startup

quiet_startup()  # before TensorFlow is imported (by tfs2s.tasks): no start-up noise in the pipelines' output

from tfs2s import tasks  # noqa: E402
from tfs2s.tasks.text.predictor import Translator  # noqa: E402


def parser(description: str, config: str, run_dir: str) -> argparse.ArgumentParser:
    """The options every pipeline takes (``--config``, ``--run-dir``, ``--set``, ``--data-dir``, ...)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=config, help=f"YAML config (default: {config})")
    p.add_argument("--run-dir", default=run_dir, help=f"run folder, resumed when it exists (default: {run_dir})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--data-dir", help="folder holding the corpora, only read (default: "
                   "$TFS2S_DATA_DIR, else ../shared/data when present, else ~/.cache/tfs2s, downloading Multi30k)")
    p.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N pairs only")
    p.add_argument("--export-dir", default="saved_models", help="root of exported models")
    p.add_argument("--no-onnx", action="store_true", help="export the SavedModel only")
    return p


def cli(argv: list[str], echo: bool = True) -> int:
    """Runs a ``tfs2s`` command in this process and returns its exit status."""
    if echo:
        print(f"\n$ tfs2s {' '.join(argv)}", flush=True)
    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def train(args) -> int:
    """``tfs2s train`` with the pipeline's config, overrides and run folder (resumes an interrupted run)."""
    overrides = [f"--set={s}" for s in args.set] + ([f"--data-dir={args.data_dir}"] if args.data_dir else [])
    return cli(["train", "--config", args.config, *overrides, "--run-dir", args.run_dir])


def load_run(run_dir: str, data_dir: str | None = None):
    """The predictor over a run's best checkpoint (any task), optionally reading corpora from ``data_dir``."""
    return tasks.load(run_dir, data_dir=data_dir)


def load_translator(run_dir: str, data_dir: str | None = None) -> Translator:
    """A ``Translator`` over a run's best checkpoint, optionally reading corpora from ``data_dir``."""
    return tasks.load(run_dir, expect="tokens", data_dir=data_dir)


def export(args) -> tuple[int, str | None]:
    """``tfs2s export`` (with ONNX unless ``--no-onnx``); returns the status and the export's folder."""
    info = os.path.join(args.run_dir, "export.json")
    status = cli(["export", "--run-dir", args.run_dir, "--export-dir", args.export_dir, "--info", info]
                 + ([] if args.no_onnx else ["--onnx"]))
    if status:
        return status, None
    with open(info, encoding="utf-8") as f:
        return 0, json.load(f)["export"]
