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


def test_shipped_configs_are_found_by_stem(tmp_path, monkeypatch):
    from tfs2s.core.config import PACKAGED_CONFIGS, packaged_configs
    from tfs2s.core.errors import ConfigNotFoundError

    monkeypatch.chdir(tmp_path)  # no file of that name here: the stem is looked up among the shipped configs
    stems = packaged_configs()
    assert "multi30k_small" in stems and "etth1" in stems
    assert set(stems) == {f[:-5] for f in __import__("os").listdir(PACKAGED_CONFIGS) if f.endswith(".yaml")}
    by_stem = load_config("multi30k_small")
    assert by_stem == load_config(f"{PACKAGED_CONFIGS}/multi30k_small.yaml") == load_config("multi30k_small.yaml")
    assert by_stem.name == "multi30k_small"
    (tmp_path / "multi30k_small.yaml").write_text("name: mine\n")  # a file of that name wins over the shipped one
    assert load_config("multi30k_small.yaml").name == "mine"
    assert load_config("multi30k_small").name == "multi30k_small"  # a bare stem names a shipped config
    with pytest.raises(ConfigNotFoundError, match="not found: nope.*multi30k_small") as err:
        load_config("nope")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ConfigError)
    with pytest.raises(ConfigNotFoundError):
        load_config("some/dir/multi30k_small.yaml")  # a path is a path: no stem lookup


def test_file_corpus_paths_are_read_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "c.yaml").write_text("data:\n  corpus: files\n  train: [data/train.vi, data/train.en]\n"
                                   "  validation: dev.tsv\n  image_dir: /abs/images\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(folder / "c.yaml", ["data.test=test.tsv"])
    assert cfg.data.train == (str(folder / "data" / "train.vi"), str(folder / "data" / "train.en"))
    assert cfg.data.validation == (str(folder / "dev.tsv"),)
    assert cfg.data.test == (str(tmp_path / "test.tsv"),)  # an override: relative to the working directory
    assert cfg.data.image_dir == "/abs/images"
    save_config(cfg, tmp_path / "run")
    assert load_config(tmp_path / "run" / "config.json") == cfg  # absolute already: read back unchanged
    assert load_config(None).data.train == ()
    with pytest.raises(ConfigError, match="data.corpus=files needs data.train"):
        load_config(None, ["data.corpus=files"])
    with pytest.raises(ConfigError, match="data.train names one file or two"):
        load_config(None, {"data.train": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="data.validation must be a file name or a list of file names"):
        load_config(None, {"data.validation": 3})
    with pytest.raises(ConfigError, match="data.test_fraction"):
        load_config(None, {"data.validation_fraction": 0.5, "data.test_fraction": 0.5})
