"""Frozen dataclass configuration, loaded from YAML with unknown keys rejected.

Defaults live only in the dataclasses below. A run saves ``config.json`` beside its checkpoints and exports,
and ``load_config`` reads either YAML or that JSON back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Mapping, Sequence

import yaml

from tfs2s.core.errors import ConfigError  # noqa: F401  (raised here; importable from here)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What corpus to read and how to turn it into batches.

    Attributes:
        corpus: Corpus name known to ``tfs2s.data`` (``multi30k``, ``spa_eng``).
        data_dir: Folder holding the corpora; ``None`` means ``../shared/data`` when present.
        source_lang: Source language code.
        target_lang: Target language code.
        tokenizer: ``word`` (whole words, in-graph hash table), ``wordpiece`` (tensorflow-text subwords) or
            ``char`` (characters; image-to-text).
        source_vocab_size: Upper bound on the source vocabulary, special tokens included.
        target_vocab_size: Upper bound on the target vocabulary, special tokens included.
        min_frequency: Word-level only: words seen fewer times in training become ``<unk>``.
        lowercase: Lowercase text before tokenizing.
        max_source_length: Source tokens kept (longer sources are truncated, in training and serving).
        max_target_length: Training pairs whose target is longer are dropped.
        reverse_source: Feed the source reversed (Sutskever et al. 2014).
        batch_size: Sentence pairs per batch (bucketing keeps batches of similar length).
        bucket_width: Width of the length buckets in tokens; 0 disables bucketing.
        shuffle_buffer: Examples in the shuffle buffer.
        seed: Seed of the shuffle and of train/validation/test splits built in code.
        limit: Read only the first N training pairs (0 = all); for smoke runs.
        context_turns: Dialogue corpora: previous utterances in each example's source.
        turn_separator: Dialogue corpora: the token placed between those utterances.
        image_height: Image corpora: height in pixels every image must have.
        image_width: Image corpora: width in pixels every image must have.
        image_channels: Image corpora: 1 (grayscale) or 3 (RGB); images are converted on decoding.
        augment: Image corpora: light augmentation of training images (brightness, contrast, small shifts).
        validation_fraction: Corpora without an official split (images): share held out for validation.
        lookback: Time series: past steps the encoder reads (L).
        horizon: Time series: future steps the decoder predicts (H).
        columns: Time series: comma-separated columns modelled (input and output); empty = every column
            (multivariate), e.g. ``OT`` for the univariate setting.
    """

    corpus: str = "multi30k"
    data_dir: str | None = None
    source_lang: str = "de"
    target_lang: str = "en"
    tokenizer: str = "word"
    source_vocab_size: int = 16000
    target_vocab_size: int = 16000
    min_frequency: int = 2
    lowercase: bool = False
    max_source_length: int = 64
    max_target_length: int = 64
    reverse_source: bool = False
    batch_size: int = 64
    bucket_width: int = 4
    shuffle_buffer: int = 20000
    seed: int = 1234
    limit: int = 0
    context_turns: int = 1
    turn_separator: str = "SEP"
    image_height: int = 50
    image_width: int = 200
    image_channels: int = 1
    augment: bool = False
    validation_fraction: float = 0.1
    lookback: int = 96
    horizon: int = 96
    columns: str = ""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape of the encoder-decoder.

    Attributes:
        cell: ``gru`` or ``lstm``.
        layers: Recurrent layers in the encoder and in the decoder.
        bidirectional: Bidirectional encoder (its final states are bridged to the decoder size).
        embedding_dim: Token embedding size on both sides.
        hidden: Recurrent state size of the decoder (and of each encoder direction).
        dropout: Dropout on embeddings and between recurrent layers.
        attention: ``none`` (Cho et al.: the encoder summary feeds every decoder step), ``bahdanau`` (additive)
            or ``luong`` (multiplicative, "general" score).
        attention_units: Size of the additive attention's hidden layer (``bahdanau`` only).
        tie_embeddings: Share the target embedding with the output projection (needs
            ``embedding_dim`` equal to the attentional hidden size, which is ``hidden``).
        input_encoder: What turns the source into the sequence the recurrent encoder reads: ``tokens`` (an
            embedding of token ids), ``image`` (a convolutional encoder; its feature map, flattened over
            space column by column, becomes a left-to-right sequence) or ``vectors`` (a dense projection of
            real-valued vectors).
        output_head: ``softmax`` over a target vocabulary, or ``regression`` (real-valued vectors; the decoder
            reads the previous step's values instead of a token embedding).
        conv_blocks: ``image`` encoder: convolution blocks (3x3 conv, ReLU, 2x2 max-pool each).
        conv_filters: ``image`` encoder: filters of the first block (doubled by each further block).
        linear_skip: ``regression`` head: add a linear map of the source window to the decoder's output (the
            "highway" of Lai et al. 2018's LSTNet / DLinear): the recurrent decoder models what a linear
            forecast misses. Needs a fixed source length (``data.lookback``).
        subtract_last: ``regression`` head: the model sees every value relative to the window's last
            observation and adds it back to its predictions (NLinear's normalisation), so a series whose level
            drifts between training and test periods is forecast from the same relative patterns.
    """

    cell: str = "gru"
    layers: int = 1
    bidirectional: bool = True
    embedding_dim: int = 256
    hidden: int = 512
    dropout: float = 0.2
    attention: str = "bahdanau"
    attention_units: int = 256
    tie_embeddings: bool = False
    input_encoder: str = "tokens"
    output_head: str = "softmax"
    conv_blocks: int = 3
    conv_filters: int = 32
    linear_skip: bool = False
    subtract_last: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to fit the model.

    Attributes:
        epochs: Upper bound on epochs.
        max_minutes: Stop after this much training time (validation passes excluded); 0 = no limit.
        learning_rate: Peak learning rate of Adam.
        optimizer: ``adam`` (Keras' Adam) or ``lazy_adam`` (sparse gradients of embeddings and of a sampled
            output layer update only the rows they touch; see ``tfs2s.optimizers.LazyAdam``).
        lr_schedule: ``constant``, ``plateau`` (halve on a validation-loss plateau) or ``cosine``.
        warmup_steps: Linear warm-up steps for ``cosine``.
        clipnorm: Clip gradients to this global norm; 0 disables clipping.
        output_bias_init: ``unigram`` (the output layer's bias starts as the log frequencies of the training
            targets, so the first steps need not squeeze the unigram distribution out of the hidden state; with
            a zero bias, Adam's first steps drove every tanh unit of a DailyDialog model into saturation, where
            it stayed, predicting "." everywhere) or ``zeros``. Token outputs only (text and image-to-text
            runs); the regression head starts at zero.
        label_smoothing: Label smoothing of the cross-entropy (full softmax only; evaluation always uses it).
        loss: ``cross_entropy`` (full softmax) or ``sampled_softmax`` (Jean et al. 2015: each training step
            normalises over the target word and ``sampled_softmax_samples`` sampled words; validation,
            evaluation and decoding use the full softmax).
        sampled_softmax_samples: Words sampled per training step (log-uniform over the frequency-sorted
            vocabulary); must be smaller than the target vocabulary.
        early_stopping_patience: Epochs without validation-loss improvement before stopping; 0 disables.
        bleu_every_minutes: Greedy validation BLEU every N minutes of training (0 = at epoch ends only).
        bleu_sentences: Validation sentences decoded for that BLEU (0 = all).
        steps_per_epoch: Cap on steps per epoch (0 = a full pass); for smoke runs.
        jit_compile: Compile the train step with XLA.
        scheduled_sampling: ``regression`` head: probability that a decoder input is the model's own
            prediction for the previous step instead of the true previous value (Bengio et al. 2015; the
            decoder then runs step by step); 0 = teacher forcing, 1 = free-running training.
    """

    epochs: int = 20
    max_minutes: float = 0.0
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "plateau"
    warmup_steps: int = 500
    clipnorm: float = 1.0
    output_bias_init: str = "unigram"
    label_smoothing: float = 0.1
    loss: str = "cross_entropy"
    sampled_softmax_samples: int = 1024
    early_stopping_patience: int = 3
    bleu_every_minutes: float = 0.0
    bleu_sentences: int = 0
    steps_per_epoch: int = 0
    jit_compile: bool = False
    scheduled_sampling: float = 0.0


@dataclasses.dataclass(frozen=True)
class DecodingConfig:
    """Default decoding options (each can be changed per call).

    Attributes:
        strategy: ``greedy``, ``beam`` or ``sample``.
        beam_width: Beams kept by beam search.
        length_penalty: GNMT length-penalty exponent alpha (0 = none).
        n_best: Hypotheses returned per input (at most ``beam_width``).
        max_length_ratio: Decode at most ``ratio * source_length + max_length_offset`` tokens.
        max_length_offset: See ``max_length_ratio``.
        temperature: Sampling temperature.
        top_k: Sample from the k most likely tokens (0 = the whole vocabulary).
        no_repeat_ngram_size: Forbid repeating any n-gram of this size in an output (0 = allowed).
        min_length: Forbid ``</s>`` before this many output tokens (1: never an empty output).
    """

    strategy: str = "beam"
    beam_width: int = 5
    length_penalty: float = 0.6
    n_best: int = 1
    max_length_ratio: float = 1.5
    max_length_offset: int = 10
    temperature: float = 1.0
    top_k: int = 0
    no_repeat_ngram_size: int = 0
    min_length: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run: data, model, training and decoding."""

    name: str = "model"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    decoding: DecodingConfig = dataclasses.field(default_factory=DecodingConfig)

    def __post_init__(self):
        _validate(self)

    def to_dict(self) -> dict:
        """Plain nested dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_dotted(self) -> dict:
        """Flat dict keyed like ``replace`` and ``--set``: ``{"name": ..., "model.hidden": ..., ...}``."""
        return {f"{section}.{key}" if isinstance(values, dict) else section: value
                for section, values in self.to_dict().items()
                for key, value in (values.items() if isinstance(values, dict) else [(None, values)])}

    def replace(self, **overrides: Any) -> "Config":
        """Copy with dotted-key overrides, e.g. ``replace(**{"model.hidden": 64})``."""
        return config_from_dict(_apply_overrides(self.to_dict(), overrides))


_CHOICES = {
    ("data", "tokenizer"): ("word", "wordpiece", "char"),
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


def _validate(cfg: Config) -> None:
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
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError("model.dropout must be in [0, 1)")
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
    for key in ("linear_skip", "subtract_last"):
        if getattr(cfg.model, key) and cfg.model.output_head != "regression":
            raise ConfigError(f"model.{key} applies to model.output_head=regression only")
    if not 0.0 <= cfg.training.scheduled_sampling <= 1.0:
        raise ConfigError("training.scheduled_sampling must be in [0, 1]")
    if not 0.0 <= cfg.data.validation_fraction < 1.0:
        raise ConfigError("data.validation_fraction must be in [0, 1)")
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


# Source encoder and output head combinations that are built and tested.
_PAIRINGS = (("tokens", "softmax"), ("image", "softmax"), ("vectors", "regression"))


def _build(cls, values: Mapping[str, Any], path: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" in section '{path}'" if path else ""
        raise ConfigError(f"unknown config key {', '.join(repr(k) for k in unknown)}{where}; "
                          f"valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        dotted = f"{path}.{key}" if path else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, dotted)
        else:
            kwargs[key] = _coerce(value, hint, dotted)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, dotted: str) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted} must be true or false, got {value!r}")
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is float and isinstance(value, str):
        # YAML 1.1 reads exponents without a dot (1e-5, also as json.dumps writes them) as strings.
        try:
            return float(value)
        except ValueError:
            pass
    if target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if target is str and isinstance(value, str):
        return value
    raise ConfigError(f"{dotted} must be of type {target.__name__}, got {value!r}")


def config_from_dict(values: Mapping[str, Any]) -> Config:
    """Builds a ``Config`` from nested dicts, rejecting unknown keys with the list of valid ones."""
    return _build(Config, values, "")


def _apply_overrides(values: dict, overrides: Mapping[str, Any]) -> dict:
    values = json.loads(json.dumps(values))  # deep copy
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = values
        for part in parents:
            if part not in node or not isinstance(node[part], dict):
                raise ConfigError(f"unknown config section {part!r} in override {dotted!r}; "
                                  f"valid sections: {', '.join(k for k, v in values.items() if isinstance(v, dict))}")
            node = node[part]
        node[leaf] = value
    return values


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parses ``key.sub=value`` strings; values are read as YAML scalars (``256``, ``true``, ``0.1``, ``gru``)."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return overrides


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Config:
    """Loads a YAML (or ``config.json``) file and applies dotted overrides.

    Args:
        path: YAML or JSON file; ``None`` starts from the defaults.
        overrides: ``["model.hidden=256"]`` strings or a ``{"model.hidden": 256}`` mapping.

    Raises:
        ConfigError: Unknown key, wrong type or invalid value; the message names the key.
        FileNotFoundError: ``path`` does not exist.
    """
    values: dict = {}
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                values = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of sections")
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    base = Config().to_dict()
    merged = _apply_overrides(_deep_merge(base, values, ""), overrides)
    return config_from_dict(merged)


def _deep_merge(base: dict, values: dict, path: str) -> dict:
    out = dict(base)
    for key, value in values.items():
        if key not in base:
            where = f" in section '{path}'" if path else ""
            raise ConfigError(f"unknown config key {key!r}{where}; valid keys: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _deep_merge(base[key], value, f"{path}.{key}" if path else key)
        else:
            out[key] = value
    return out


def save_config(cfg: Config, directory: str | os.PathLike) -> str:
    """Writes ``config.json`` into ``directory`` and returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
    return path
