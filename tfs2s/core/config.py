"""Frozen dataclass configuration, loaded from YAML with unknown keys rejected.

Defaults live only in the dataclasses below. A run saves ``config.json`` beside its checkpoints and exports,
and ``load_config`` reads either YAML or that JSON back. Reading and type coercion live in ``config_file``, the
value checks ``Config`` runs on construction in ``config_checks``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

from tfs2s.core.config_checks import validate
from tfs2s.core.config_file import apply_overrides, build, deep_merge, parse_overrides, read_mapping
from tfs2s.core.errors import ConfigError, ConfigNotFoundError  # noqa: F401  (raised here; importable from here)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What corpus to read and how to turn it into batches.

    Attributes:
        corpus: Corpus name known to ``tfs2s.data.corpora`` (``multi30k``, ``spa_eng``, ...), or ``files``: the
            user's own files named by ``train``, ``validation`` and ``test``.
        data_dir: Folder holding the corpora, only read; ``None`` means ``$TFS2S_DATA_DIR``, else
            ``../shared/data`` when present, else ``~/.cache/tfs2s``, into which corpora with public downloads
            (Multi30k, Topical-Chat, ETTh1) download themselves on first use (see ``tfs2s.data.download``).
        source_lang: Source language code (a free label for ``files`` corpora).
        target_lang: Target language code (a free label for ``files`` corpora).
        train: ``files`` corpora: the training data, one file (TSV, JSON lines or CSV, by task) or two
            line-aligned files (source, target; plain or ``.gz``). Relative paths are read from the config
            file's folder (from the working directory in ``--set`` overrides).
        validation: ``files`` corpora: the validation data, as ``train``; empty = a seeded
            ``validation_fraction`` share held out of ``train``.
        test: ``files`` corpora: the test data, as ``train``; empty = a seeded ``test_fraction`` share of
            ``train`` (none when 0). Time series read only ``train`` and split it in time order.
        image_dir: ``files`` image corpora: folder the captions file's image paths are relative to (empty =
            the captions file's folder).
        tokenizer: ``word`` (whole words, in-graph hash table), ``wordpiece`` (tensorflow-text subwords),
            ``sentencepiece`` (SentencePiece subwords, learned with the ``sentencepiece`` package, run with
            tensorflow-text) or ``char`` (characters; image-to-text).
        subword_model: ``sentencepiece`` only: ``unigram`` or ``bpe``.
        shared_vocab: Subword tokenizers: one vocabulary learned from both sides and used on both (of the
            larger of ``source_vocab_size`` and ``target_vocab_size``).
        source_vocab_size: Upper bound on the source vocabulary, special tokens included.
        target_vocab_size: Upper bound on the target vocabulary, special tokens included.
        min_frequency: Word-level only: words seen fewer times in training become ``<unk>`` (SentencePiece
            keeps every character seen in training; unseen characters become ``<unk>``).
        lowercase: Lowercase text before tokenizing.
        max_source_length: Source tokens kept (longer sources are truncated, in training and serving).
        max_target_length: Training pairs whose target is longer are dropped.
        reverse_source: Feed the source reversed (Sutskever et al. 2014).
        batch_size: Sentence pairs per batch (bucketing keeps batches of similar length).
        bucket_width: Width of the length buckets in tokens; 0 disables bucketing.
        batch_tokens: Token-based batches (as JoeyNMT, OpenNMT and fairseq): each length bucket's batches hold
            up to this many tokens, counted as batch rows x the bucket's longest side (padding included), so
            short sentences come in larger batches and memory stays flat; 0 = ``batch_size`` sentences.
            Training batches only (validation keeps ``batch_size`` sentences); with ``bucket_width`` 0 the one
            bucket's longest side is the larger max length; under ``tf.distribute`` it is the global budget.
        shuffle_buffer: Examples in the shuffle buffer.
        seed: Seed of the shuffle and of train/validation/test splits built in code.
        limit: Read only the first N training pairs (0 = all); for smoke runs.
        context_turns: Dialogue corpora: previous utterances in each example's source.
        turn_separator: Dialogue corpora: the token placed between those utterances.
        image_height: Image corpora: height in pixels the model reads (images of another size are resized to
            it in-graph, in training and serving).
        image_width: Image corpora: width in pixels the model reads (see ``image_height``).
        image_channels: Image corpora: 1 (grayscale) or 3 (RGB); images are converted on decoding.
        augment: Image corpora: light augmentation of training images (brightness, contrast, small shifts).
        validation_fraction: Corpora without an official validation split (images, ``files`` corpora without a
            validation file): share held out for validation.
        test_fraction: ``files`` corpora without a test file: share held out for test (0 = no test split).
        validation_start: ``files`` time series: the first timestamp of the validation rows (empty: split by
            the fractions, in time order).
        test_start: ``files`` time series: the first timestamp of the test rows (see ``validation_start``).
        lookback: Time series: past steps the encoder reads (L).
        horizon: Time series: future steps the decoder predicts (H).
        columns: Time series: comma-separated columns modelled (input and output); empty = every column
            (multivariate), e.g. ``OT`` for the univariate setting.
    """

    corpus: str = "multi30k"
    data_dir: str | None = None
    source_lang: str = "de"
    target_lang: str = "en"
    train: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    image_dir: str = ""
    tokenizer: str = "word"
    subword_model: str = "unigram"
    shared_vocab: bool = False
    source_vocab_size: int = 16000
    target_vocab_size: int = 16000
    min_frequency: int = 2
    lowercase: bool = False
    max_source_length: int = 64
    max_target_length: int = 64
    reverse_source: bool = False
    batch_size: int = 64
    bucket_width: int = 4
    batch_tokens: int = 0
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
    test_fraction: float = 0.0
    validation_start: str = ""
    test_start: str = ""
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
        variational_dropout: Locked (variational) dropout, Gal & Ghahramani 2016: one mask per sequence,
            the same at every time step, on the embeddings, between recurrent layers and on the decoder's
            attentional output (in place of ``dropout`` there when > 0); 0 = off.
        weight_dropout: DropConnect on the recurrent hidden-to-hidden matrices (AWD-LSTM, Merity et al. 2018):
            this share of their weights is dropped, one mask per batch; 0 = off.
        embedding_dropout: Word dropout: this share of the vocabulary's embedding rows is zeroed per batch
            (every occurrence of a dropped word at once; Gal & Ghahramani 2016); 0 = off.
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
        copy: Copy attention (See et al. 2017's pointer-generator): each step mixes generating from the target
            vocabulary with copying a source word through its attention (``tfs2s.core.layers.copy``); needs
            attention, a word-level tokenizer, ``tokens`` in and ``softmax`` out, and the full softmax.
    """

    cell: str = "gru"
    layers: int = 1
    bidirectional: bool = True
    embedding_dim: int = 256
    hidden: int = 512
    dropout: float = 0.2
    variational_dropout: float = 0.0
    weight_dropout: float = 0.0
    embedding_dropout: float = 0.0
    attention: str = "bahdanau"
    attention_units: int = 256
    tie_embeddings: bool = False
    input_encoder: str = "tokens"
    output_head: str = "softmax"
    conv_blocks: int = 3
    conv_filters: int = 32
    linear_skip: bool = False
    subtract_last: bool = False
    copy: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to fit the model.

    Attributes:
        epochs: Upper bound on epochs.
        max_minutes: Stop after this much training time (validation passes excluded); 0 = no limit.
        learning_rate: Peak learning rate of Adam.
        optimizer: ``adam`` (Keras' Adam) or ``lazy_adam`` (sparse gradients of embeddings and of a sampled
            output layer update only the rows they touch; see ``tfs2s.core.optimizers.LazyAdam``).
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
        precision: ``float32``, ``mixed_bfloat16`` or ``mixed_float16`` (Keras mixed precision: computations in
            16 bits; variables, losses and decoding scores in float32; float16 with dynamic loss scaling).
            Training only: loaded runs and exports are rebuilt in float32 with the trained weights.
        average_checkpoints: Keep the weights of the last N epochs and, when training ends, make the run's
            final model (``checkpoints/best.weights.h5``) their average; the best single epoch stays in
            ``best_epoch.weights.h5`` (``tfs2s average`` averages again afterwards); 0 = off.
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
    precision: str = "float32"
    average_checkpoints: int = 0


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
        replace_unknown: Word-level models with attention: replace each ``<unk>`` of an output by the source
            word it attends to most (Jean et al. 2015), in ``tfs2s translate``, the serving signatures and the
            ONNX text graph.
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
    replace_unknown: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run: data, model, training and decoding."""

    name: str = "model"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    decoding: DecodingConfig = dataclasses.field(default_factory=DecodingConfig)

    def __post_init__(self):
        validate(self)

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
        return config_from_dict(apply_overrides(self.to_dict(), overrides))


def config_from_dict(values: Mapping[str, Any]) -> Config:
    """Builds a ``Config`` from nested dicts, rejecting unknown keys with the list of valid ones."""
    return build(Config, values, "")


# The configs shipped with the package (``tfs2s/configs/*.yaml``; ``pipelines/configs`` links here).
PACKAGED_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def packaged_configs() -> list[str]:
    """The stems of the shipped configs (``multi30k_small``, ``etth1``, ...)."""
    return sorted(f[: -len(".yaml")] for f in os.listdir(PACKAGED_CONFIGS) if f.endswith(".yaml"))


def find_config(path: str | os.PathLike) -> str:
    """``path`` when it is a file, else the shipped config of that stem (``multi30k_small``).

    Raises:
        FileNotFoundError: Neither a file nor a shipped config's stem (a ``ConfigError`` too: a user's mistake).
    """
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    stem = os.path.basename(path)
    for suffix in (".yaml", ".yml"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    shipped = os.path.join(PACKAGED_CONFIGS, f"{stem}.yaml")
    if os.sep not in path and os.path.exists(shipped):
        return shipped
    raise ConfigNotFoundError(f"config file not found: {path} (shipped configs, usable by name: "
                              f"{', '.join(packaged_configs())})")


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Config:
    """Loads a YAML (or ``config.json``) file and applies dotted overrides.

    Args:
        path: YAML or JSON file, or the stem of a shipped config (``multi30k_small``: ``tfs2s/configs/``);
            ``None`` starts from the defaults.
        overrides: ``["model.hidden=256"]`` strings or a ``{"model.hidden": 256}`` mapping.

    Raises:
        ConfigError: Unknown key, wrong type or invalid value; the message names the key.
        FileNotFoundError: ``path`` is neither a file nor a shipped config's stem.
    """
    path = find_config(path) if path is not None else None
    values = read_mapping(path) if path is not None else {}
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    if path is not None and isinstance(values.get("data"), dict):
        values = {**values, "data": _resolve_paths(values["data"], os.path.dirname(os.path.abspath(path)))}
    data_overrides = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("data.")}
    overrides = {**overrides, **{f"data.{k}": v for k, v in _resolve_paths(data_overrides, os.getcwd()).items()}}
    base = Config().to_dict()
    merged = apply_overrides(deep_merge(base, values, ""), overrides)
    return config_from_dict(merged)


# Data keys holding file or folder names, which a config reads relative to its own folder.
PATH_KEYS = ("train", "validation", "test", "image_dir")


def _resolve_paths(data: Mapping[str, Any], base: str) -> dict:
    """``data`` with relative paths of ``PATH_KEYS`` made absolute against ``base``."""
    def resolve(value):
        if isinstance(value, str):
            return os.path.normpath(os.path.join(base, os.path.expanduser(value))) if value else value
        if isinstance(value, (list, tuple)):
            return [resolve(v) for v in value]
        return value

    return {k: resolve(v) if k in PATH_KEYS else v for k, v in data.items()}


def save_config(cfg: Config, directory: str | os.PathLike) -> str:
    """Writes ``config.json`` into ``directory`` and returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
    return path
