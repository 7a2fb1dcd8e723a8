"""The benchmark scripts' own logic (their figures are measured by running them, not here)."""

import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import quality  # noqa: E402
import summary  # noqa: E402


def test_update_summary_keeps_other_scripts_keys(tmp_path):
    path = str(tmp_path / "quality_summary.json")
    summary.update_summary({"aeslc_dev_rougeL": 12.5}, path)
    summary.update_summary({"multi30k_test2016_bleu": 38.1}, path)
    summary.update_summary({"aeslc_dev_rougeL": 13.0}, path)
    written = json.loads(open(path, encoding="utf-8").read())
    assert written["aeslc_dev_rougeL"] == 13.0 and written["multi30k_test2016_bleu"] == 38.1
    assert written["date"] and written["commit"].split("+")[0] and len(written["commit"].split("+")[0]) == 40


def test_quality_variants_default_to_the_tasks_and_reject_unknown(capsys):
    assert quality.parse(["--task", "aeslc"]).variants == ["plain", "copy"]
    assert quality.parse(["--task", "dailydialog", "--variants", "regularised"]).variants == ["regularised"]
    with pytest.raises(SystemExit):
        quality.parse(["--task", "aeslc", "--variants", "copy,coverage"])
    assert "choose from ['copy', 'plain']" in capsys.readouterr().err


def test_quality_headlines_read_the_default_output():
    rouge = {"model": {"rougeL": 7.4}, "model_unk_replaced": {"rougeL": 10.7}}
    assert quality.headline("aeslc", rouge) == 10.7
    assert quality.headline("aeslc", {"model": {"rougeL": 7.4}}) == 7.4
    assert quality.headline("dailydialog", {"perplexity_ratio": 0.73}) == 0.73
    # Every regularised switch is a real config key.
    from tfs2s.core.config import load_config
    cfg = load_config("dailydialog", quality.REGULARISED)
    assert cfg.model.weight_dropout == 0.3 and cfg.training.average_checkpoints == 3
