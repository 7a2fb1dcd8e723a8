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


def _fake_run(monkeypatch, ratios):
    """``run_one`` over a stand-in training and scoring: ``ratios`` maps checkpoint name -> perplexity ratio."""
    import tfs2s.tasks
    monkeypatch.setattr(tfs2s.tasks, "train", lambda cfg, run_dir, verbose: {"minutes": 1.0})
    monkeypatch.setattr(tfs2s.tasks, "load", lambda run_dir, weights="best": weights)
    calls = []

    def score(task, weights, eval_limit, decode_limit=2000):
        calls.append((weights, decode_limit))
        return {"perplexity_ratio": ratios[weights]}
    monkeypatch.setattr(quality, "score", score)
    return calls


@pytest.mark.parametrize("best, alone, headline, weights", [(0.70, 0.66, 0.66, "best_epoch"),
                                                            (0.64, 0.66, 0.64, "best")])
def test_quality_averaging_runs_also_score_their_best_epoch(tmp_path, monkeypatch, best, alone, headline, weights):
    from tfs2s.training.run_dir import checkpoint_path
    calls = _fake_run(monkeypatch, {"best": best, "best_epoch": alone})
    os.makedirs(os.path.dirname(checkpoint_path(str(tmp_path), "best_epoch")))
    open(checkpoint_path(str(tmp_path), "best_epoch"), "w").close()
    result = quality.run_one("dailydialog", "regularised", [], str(tmp_path), 0)
    assert calls == [("best", 2000), ("best_epoch", 1)]  # the best epoch for perplexities only
    assert result["headline"] == headline and result["weights"] == weights
    assert result["best_epoch_validation"] == {"perplexity_ratio": alone}


def test_quality_runs_without_averaging_score_one_checkpoint(tmp_path, monkeypatch):
    calls = _fake_run(monkeypatch, {"best": 0.7})
    result = quality.run_one("dailydialog", "plain", [], str(tmp_path), 0)
    assert calls == [("best", 2000)] and result["weights"] == "best" and "best_epoch_validation" not in result
