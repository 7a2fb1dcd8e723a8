"""Forecasting pipeline: train the seq2seq forecaster on ETTh1 (past 96 hours of the 7 variables -> next 96),
compare it with persistence, seasonal-naive and linear-window baselines on the same validation and test windows,
export it (SavedModel + ONNX, original units in and out) and check that onnxruntime forecasts what TensorFlow does.

    python pipelines/forecast.py                                          # multivariate, H = 96
    python pipelines/forecast.py --set data.columns=OT --run-dir runs/etth1_ot      # univariate (OT only)
    python pipelines/forecast.py --set data.horizon=24 --run-dir runs/etth1_24
    python pipelines/forecast.py --set training.epochs=1 --set training.steps_per_epoch=20   # smoke run

Metrics are MSE and MAE on z-normalised values (training statistics), the convention of the ETT literature.
Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def print_table(summary: dict) -> None:
    print(f"\n# {summary['name']}: lookback {summary['lookback']}, horizon {summary['horizon']}, "
          f"columns {','.join(summary['columns'])}; {summary['train_minutes']} training minutes")
    print("split | system | MSE | MAE")
    for split in ("validation", "test"):
        for system in ("model", "linear_window", "seasonal_naive_24h", "persistence"):
            s = summary[split][system]
            print(f"{split} | {system} | {s['mse']} | {s['mae']}")


def main(argv=None) -> int:
    from tfs2s import pipeline

    p = pipeline.parser(__doc__, os.path.join(HERE, "configs", "etth1.yaml"), "runs/etth1")
    p.add_argument("--parity-windows", type=int, default=256, help="test windows checked ONNX vs TensorFlow")
    args = p.parse_args(argv)
    status = pipeline.train(args)
    if status:
        return status
    with open(os.path.join(args.run_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    print_table(summary)

    status, exported = pipeline.export(args)
    if status:
        return status
    import numpy as np
    import tensorflow as tf

    from tfs2s.tasks.series import task as forecasting
    from tfs2s.data import timeseries
    from tfs2s.core import features as F

    forecaster = pipeline.load_run(args.run_dir, args.data_dir)
    series = forecasting.load_series(forecaster.config)
    past, future = timeseries.make_windows(timeseries.ett_split(series.values, "test", forecaster.lookback),
                                           forecaster.lookback, forecaster.horizon)
    past = past[: args.parity_windows]
    served = tf.saved_model.load(exported).signatures["serving_default"](
        **{F.ENCODER_VALUES: tf.constant(past)})["forecast"].numpy()
    report = {"export": exported, "windows": len(past)}
    if not args.no_onnx:
        from tfs2s.export.onnx.runtime import OnnxForecaster

        onnx_out = OnnxForecaster(exported).forecast(past)
        report["onnx_vs_savedmodel_max_normalized_diff"] = float(
            np.max(np.abs(onnx_out - served) / forecaster.standardizer.std))
    column = forecaster.columns[-1]
    report["sample"] = {"column": column, "predicted_next_24h": np.round(served[0, :24, -1], 3).tolist(),
                        "actual_next_24h": np.round(future[0, :24, -1], 3).tolist()}
    print(json.dumps(report, indent=1))
    with open(os.path.join(args.run_dir, "export_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
