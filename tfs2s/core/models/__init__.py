"""Keras functional encoder-decoder models, built from a ``ModelConfig``.

``build_models`` returns three models that share the same named layers (never looked up by index; the names
are the constants of ``contract``):

* ``training``: ``{encoder_token_ids, decoder_token_ids} -> logits [B, T, V]`` (teacher forcing); with a sampled
  softmax it outputs the output layer's inputs ``[B, T, H]`` instead and computes its own loss (see
  ``SampledSoftmaxTrainingModel``), while ``teacher_forced`` still gives the logits;
* ``encoder``: ``encoder_token_ids -> {memory, keys, mask, context, states...}``;
* ``decoder_step``: one target token and the decoder state -> ``logits [B, V]``, new state, alignment.

The source need not be text (``model.input_encoder``): ``encoder_image [B, H, W, C]`` goes through a small
convolutional encoder whose feature map is read column by column, ``encoder_values [B, L, F]`` through a dense
projection; either way the same recurrent encoder follows. The target need not be tokens
(``model.output_head: regression``): the decoder then reads ``decoder_values [B, T, F]`` (the previous steps'
values) and predicts real values; ``Seq2SeqModels.value_step`` is its step, ``RegressionTrainingModel`` its
training model.

Architecture. Encoder: embedding -> ``layers`` (bi)GRU/LSTM layers (``encoder``). Decoder: embedding ->
``layers`` GRU/LSTM layers -> attention over the encoder states -> ``tanh`` combination of RNN output and context
-> vocabulary projection (``decoder``).

Modules: ``contract`` (``Seq2SeqModels``, the layer and tensor names), ``build`` (``build_models``),
``sources`` (token, image and vector source encoders), ``encoder`` (the recurrent encoder), ``decoder`` (the
shared decoder layers), ``keras_models`` (the registered ``keras.Model`` subclasses), ``output_bias`` (the output
layer and target embedding, tied or not, and the unigram bias).
"""

from tfs2s.core.models.build import build_models
from tfs2s.core.models.contract import (ALIGNMENT, ATTENTION, ATTENTION_KEYS, ATTENTIONAL_HIDDEN, BASELINE, BRIDGE,
                                        CONTEXT, CONTEXT_PROJECTION, DECODER_RNN, ENCODER_BIRNN, ENCODER_RNN, KEYS,
                                        LAST_VALUES, LINEAR_SKIP, LOGITS, MASK, MEMORY, OUTPUT_PROJECTION, RNN_CELL,
                                        SOURCE_EMBEDDING, SOURCE_INPUTS, SOURCE_PROJECTION, TARGET_EMBEDDING,
                                        TIED_EMBEDDING, VALUES, Seq2SeqModels, banned_token_bias, state_names)
from tfs2s.core.models.keras_models import RegressionTrainingModel, SampledSoftmaxTrainingModel, Seq2SeqTrainingModel
from tfs2s.core.models.output_bias import output_layer, set_unigram_output_bias, target_embedding_layer

__all__ = ["build_models", "Seq2SeqModels", "set_unigram_output_bias", "banned_token_bias", "output_layer",
           "target_embedding_layer", "state_names", "Seq2SeqTrainingModel", "SampledSoftmaxTrainingModel",
           "RegressionTrainingModel", "SOURCE_INPUTS", "MEMORY", "KEYS", "MASK", "CONTEXT", "BASELINE",
           "LAST_VALUES", "VALUES", "LOGITS", "ALIGNMENT", "SOURCE_EMBEDDING", "SOURCE_PROJECTION", "ENCODER_RNN",
           "ENCODER_BIRNN", "BRIDGE", "ATTENTION", "ATTENTION_KEYS", "CONTEXT_PROJECTION", "LINEAR_SKIP",
           "TARGET_EMBEDDING", "TIED_EMBEDDING", "DECODER_RNN", "RNN_CELL", "ATTENTIONAL_HIDDEN",
           "OUTPUT_PROJECTION"]
