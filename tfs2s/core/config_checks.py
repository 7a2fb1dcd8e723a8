"""The value checks of a ``Config``: allowed choices, ranges, and combinations of settings that work together.

``Config.__post_init__`` runs ``validate``, so no invalid config is ever built, whether from YAML, from
``config.json``, from ``--set`` overrides or in code.
"""

from __future__ import annotations

from tfs2s.core.errors import ConfigError

_CHOICES = {
    ("training", "precision"): ("float32", "mixed_bfloat16", "mixed_float16"),
    ("data", "tokenizer"): ("word", "wordpiece", "sentencepiece", "char"),
    ("data", "subword_model"): ("unigram", "bpe"),
    ("model", "cell"): ("gru", "lstm"),
    ("model", "attention"): ("none", "bahdanau", "luong"),
    ("model", "input_encoder"): ("tokens", "image", "vectors"),
    ("model", "output_head"): ("softmax", "regression"),
    ("training", "lr_schedule"): ("constant", "plateau", "cosine"),
    ("training", "loss"): ("cross_entropy", "sampled_softmax"),
    ("training", "optimizer"): ("adam", "lazy_adam"),
    ("training", "output_bias_init"): ("unigram", "zeros"),
    ("decoding", "strategy"): ("greedy", "beam", "sample"),
}

# Source encoder and output head combinations that are built and tested.
_PAIRINGS = (("tokens", "softmax"), ("image", "softmax"), ("vectors", "regression"))


def validate(cfg) -> None:
    """Checks a ``Config`` (not imported here: ``config.py`` imports this module).

    Raises:
        ConfigError: The first invalid value or combination of values; the message names the keys.
    """
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise ConfigError(f"{section}.{key}={value!r} is not one of {', '.join(allowed)}")
    positive = [("data", "batch_size"), ("data", "max_source_length"), ("data", "max_target_length"),
                ("data", "context_turns"), ("model", "layers"), ("model", "embedding_dim"), ("model", "hidden"),
                ("decoding", "beam_width"), ("decoding", "n_best"), ("training", "epochs")]
    for section, key in positive:
        if getattr(getattr(cfg, section), key) < 1:
            raise ConfigError(f"{section}.{key} must be at least 1")
    if not cfg.data.turn_separator.strip() or len(cfg.data.turn_separator.split()) != 1:
        raise ConfigError(f"data.turn_separator must be one word, got {cfg.data.turn_separator!r}")
    for key in ("dropout", "variational_dropout", "weight_dropout", "embedding_dropout"):
        if not 0.0 <= getattr(cfg.model, key) < 1.0:
            raise ConfigError(f"model.{key} must be in [0, 1)")
    for section, key in (("data", "batch_tokens"), ("training", "average_checkpoints")):
        if getattr(getattr(cfg, section), key) < 0:
            raise ConfigError(f"{section}.{key} must be 0 (off) or positive")
    if not 0.0 <= cfg.training.label_smoothing < 1.0:
        raise ConfigError("training.label_smoothing must be in [0, 1)")
    if cfg.decoding.n_best > cfg.decoding.beam_width and cfg.decoding.strategy == "beam":
        raise ConfigError(f"decoding.n_best ({cfg.decoding.n_best}) cannot exceed decoding.beam_width "
                          f"({cfg.decoding.beam_width})")
    if cfg.training.loss == "sampled_softmax":
        samples, vocab = cfg.training.sampled_softmax_samples, cfg.data.target_vocab_size
        if not 0 < samples < vocab:
            raise ConfigError(f"training.sampled_softmax_samples ({samples}) must be at least 1 and smaller than "
                              f"data.target_vocab_size ({vocab})")
    if cfg.decoding.min_length < 0:
        raise ConfigError("decoding.min_length must be 0 or positive")
    if cfg.decoding.no_repeat_ngram_size < 0:
        raise ConfigError("decoding.no_repeat_ngram_size must be 0 (off) or positive")
    if cfg.decoding.temperature <= 0:
        raise ConfigError("decoding.temperature must be positive")
    if cfg.model.tie_embeddings and cfg.model.embedding_dim != cfg.model.hidden:
        raise ConfigError("model.tie_embeddings needs model.embedding_dim == model.hidden")
    if cfg.model.tie_embeddings and cfg.model.output_head != "softmax":
        raise ConfigError("model.tie_embeddings needs model.output_head=softmax (a vocabulary to share)")
    pairing = (cfg.model.input_encoder, cfg.model.output_head)
    if pairing not in _PAIRINGS:
        raise ConfigError(f"model.input_encoder={pairing[0]!r} with model.output_head={pairing[1]!r} is not "
                          f"supported; supported: {', '.join(f'{a}+{b}' for a, b in _PAIRINGS)}")
    if cfg.training.loss == "sampled_softmax" and cfg.model.output_head != "softmax":
        raise ConfigError("training.loss=sampled_softmax needs model.output_head=softmax")
    _check_copy(cfg)
    for key in ("linear_skip", "subtract_last"):
        if getattr(cfg.model, key) and cfg.model.output_head != "regression":
            raise ConfigError(f"model.{key} applies to model.output_head=regression only")
    if not 0.0 <= cfg.training.scheduled_sampling <= 1.0:
        raise ConfigError("training.scheduled_sampling must be in [0, 1]")
    if not 0.0 <= cfg.data.validation_fraction < 1.0:
        raise ConfigError("data.validation_fraction must be in [0, 1)")
    if not 0.0 <= cfg.data.test_fraction < 1.0 or cfg.data.validation_fraction + cfg.data.test_fraction >= 1.0:
        raise ConfigError("data.test_fraction must be in [0, 1) and leave a training share beside "
                          "data.validation_fraction")
    for split in ("train", "validation", "test"):
        files = getattr(cfg.data, split)
        if len(files) > 2:
            raise ConfigError(f"data.{split} names one file or two line-aligned files (source, target), "
                              f"got {len(files)}")
    if cfg.data.corpus == "files" and not cfg.data.train:
        raise ConfigError("data.corpus=files needs data.train: one file or [source file, target file]")
    if cfg.data.image_channels not in (1, 3):
        raise ConfigError(f"data.image_channels must be 1 or 3, got {cfg.data.image_channels}")
    for key in ("image_height", "image_width", "lookback", "horizon"):
        if getattr(cfg.data, key) < 1:
            raise ConfigError(f"data.{key} must be at least 1")
    if cfg.model.input_encoder == "image":
        if cfg.model.conv_blocks < 1 or cfg.model.conv_filters < 1:
            raise ConfigError("model.conv_blocks and model.conv_filters must be at least 1")
        shrink = 2 ** cfg.model.conv_blocks
        if cfg.data.image_height < shrink or cfg.data.image_width < shrink:
            raise ConfigError(f"{cfg.model.conv_blocks} conv blocks halve the image {cfg.model.conv_blocks} times: "
                              f"data.image_height and data.image_width must be at least {shrink}")



def _check_copy(cfg) -> None:
    """``model.copy`` copies source words into a word-level target through the attention."""
    if not cfg.model.copy:
        return
    m = cfg.model
    if m.attention == "none":
        raise ConfigError("model.copy needs attention (model.attention bahdanau or luong): it copies through it")
    if (m.input_encoder, m.output_head) != ("tokens", "softmax") or cfg.data.tokenizer != "word":
        raise ConfigError("model.copy needs model.input_encoder=tokens, model.output_head=softmax and "
                          "data.tokenizer=word (it copies whole source words)")
    if cfg.training.loss == "sampled_softmax":
        raise ConfigError("model.copy needs training.loss=cross_entropy (the copy distribution needs the full "
                          "softmax)")
