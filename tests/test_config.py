import json

import pytest

from tfs2s.core.config import Config, ConfigError, load_config, parse_overrides, save_config


def test_defaults_and_yaml_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nmodel:\n  hidden: 64\n  cell: lstm\ntraining:\n  learning_rate: 0.002\n")
    cfg = load_config(path, ["model.layers=2", "data.lowercase=true"])
    assert (cfg.name, cfg.model.hidden, cfg.model.cell, cfg.model.layers) == ("x", 64, "lstm", 2)
    assert cfg.data.lowercase is True and cfg.training.learning_rate == 0.002
    assert cfg.model.embedding_dim == Config().model.embedding_dim  # untouched default


def test_unknown_key_names_key_and_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hiden: 64\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "'hiden'" in str(err.value) and "hidden" in str(err.value) and "attention" in str(err.value)
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        load_config(None, ["bogus=1"])


def test_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="model.cell"):
        load_config(None, ["model.cell=transformer"])
    with pytest.raises(ConfigError, match="model.hidden must be of type int"):
        load_config(None, ["model.hidden=big"])
    with pytest.raises(ConfigError, match="n_best"):
        load_config(None, ["decoding.n_best=9", "decoding.beam_width=3"])
    with pytest.raises(ConfigError, match="KEY|section.key=value"):
        parse_overrides(["model.hidden"])
    with pytest.raises(ConfigError, match="tie_embeddings needs model.embedding_dim == model.hidden"):
        load_config(None, ["model.tie_embeddings=true", "model.embedding_dim=256", "model.hidden=512"])
    with pytest.raises(ConfigError, match="tie_embeddings needs model.output_head=softmax"):
        load_config(None, ["model.tie_embeddings=true", "model.embedding_dim=64", "model.hidden=64",
                           "model.input_encoder=vectors", "model.output_head=regression"])


def test_int_is_accepted_for_float_and_json_round_trip(tmp_path):
    cfg = load_config(None, {"training.learning_rate": 1, "model.dropout": 0})
    assert cfg.training.learning_rate == 1.0 and isinstance(cfg.training.learning_rate, float)
    path = save_config(cfg, tmp_path)
    assert load_config(path) == cfg
    assert json.load(open(path))["model"]["hidden"] == cfg.model.hidden


def test_exponent_floats_survive_yaml_overrides_and_config_json(tmp_path):
    """YAML 1.1 reads ``1e-5`` (no dot; json.dumps writes small floats so) as a string."""
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 3e-4\n")
    assert load_config(path).training.learning_rate == 3e-4
    cfg = load_config(None, ["training.learning_rate=1e-5"])
    assert cfg.training.learning_rate == 1e-5
    assert '"learning_rate": 1e-05' in open(save_config(cfg, tmp_path)).read()
    assert load_config(tmp_path / "config.json") == cfg
    with pytest.raises(ConfigError, match="training.learning_rate must be of type float, got 'fast'"):
        load_config(None, ["training.learning_rate=fast"])


def test_replace_returns_new_frozen_config():
    cfg = Config()
    other = cfg.replace(**{"model.hidden": 8})
    assert other.model.hidden == 8 and cfg.model.hidden != 8
    with pytest.raises(Exception):
        cfg.model.hidden = 3


def test_dotted_view_matches_the_override_keys():
    cfg = load_config(None, {"model.hidden": 64, "decoding.beam_width": 3})
    flat = cfg.to_dotted()
    assert flat["model.hidden"] == 64 and flat["decoding.beam_width"] == 3 and flat["name"] == cfg.name
    assert load_config(None, flat) == cfg  # the same keys rebuild the same config


def test_config_from_dict_builds_sections_and_rejects_unknown_keys():
    from tfs2s.core.config import DataConfig, DecodingConfig, ModelConfig, TrainingConfig, config_from_dict

    cfg = config_from_dict({"name": "n", "model": {"hidden": 32}, "decoding": {"strategy": "greedy"}})
    assert cfg.model == ModelConfig(hidden=32) and cfg.decoding == DecodingConfig(strategy="greedy")
    assert (cfg.data, cfg.training) == (DataConfig(), TrainingConfig())  # missing sections take the defaults
    with pytest.raises(ConfigError, match="unknown config key 'hiden' in section 'model'"):
        config_from_dict({"model": {"hiden": 32}})
    with pytest.raises(ConfigError, match="model must be a mapping"):
        config_from_dict({"model": 3})
