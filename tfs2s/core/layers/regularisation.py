"""Training-only regularisers for small corpora: locked dropout, word dropout and DropConnect recurrent layers.

Each changes the computation in training mode only; at inference every one of them is exactly the plain
computation (``LockedDropout`` and ``WordDropout`` return their input, the DropConnect cells run Keras' own cell
call with the undropped weights). The DropConnect cells are ``GRUCell`` / ``LSTMCell`` subclasses holding the
usual ``kernel``, ``recurrent_kernel`` and ``bias``, so whatever reads a recurrent layer's weights through
``layer.cell`` (the ONNX writers) reads the same weights.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfs2s")
class LockedDropout(keras.layers.Dropout):
    """Variational (locked) dropout, Gal & Ghahramani 2016: one mask per sequence, the same at every time step.

    A ``[batch, time, features]`` input gets a ``[batch, 1, features]`` mask; a ``[batch, features]`` input (a
    decoder's single step) one mask per row. Masking (padding) passes through, as with ``Dropout``.

    Args:
        rate: Share of the features dropped (the kept ones are scaled by ``1 / (1 - rate)``).
        seed: Seed of the masks (``None``: drawn from the global seed).
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        kwargs.pop("noise_shape", None)  # always locked over time
        super().__init__(rate, seed=seed, **kwargs)

    def call(self, inputs, training=False):
        if training and self.rate > 0 and len(inputs.shape) == 3:
            return keras.random.dropout(inputs, self.rate, noise_shape=(ops.shape(inputs)[0], 1,
                                                                        ops.shape(inputs)[2]),
                                        seed=self.seed_generator)
        return super().call(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        return config


@keras.saving.register_keras_serializable(package="tfs2s")
class WordDropout(keras.layers.Layer):
    """Word (embedding) dropout, Gal & Ghahramani 2016: a share of the vocabulary is dropped for the whole batch.

    Called on the embedded vectors and their ids: every occurrence of a dropped word becomes a zero vector (as
    if its embedding row were zeroed), the others are scaled by ``1 / (1 - rate)``. One mask per call, so per
    training batch. The embedded vectors' padding mask passes through.

    Args:
        rate: Share of the vocabulary's words dropped.
        vocab_size: Vocabulary size (ids in ``[0, vocab_size)``).
        seed: Seed of the masks (``None``: drawn from the global seed).
    """

    def __init__(self, rate: float, vocab_size: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.vocab_size, self.seed = float(rate), int(vocab_size), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, embedded, ids, training=False):
        if not training or self.rate <= 0:
            return embedded
        keep = keras.random.dropout(ops.ones((self.vocab_size,), embedded.dtype), self.rate,
                                    seed=self.seed_generator)
        return embedded * ops.expand_dims(ops.take(keep, ops.cast(ids, "int32"), axis=0), -1)

    def compute_output_shape(self, embedded_shape, ids_shape=None):
        return embedded_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "vocab_size": self.vocab_size, "seed": self.seed}


class _DropConnect:
    """Mixin of the DropConnect cells: the batch's dropped copy of ``recurrent_kernel``, drawn by the layer.

    ``DropConnectRNN`` draws the copy once before its time loop (one mask per batch, as AWD-LSTM's weight drop)
    and clears it after; the cell's step uses it only in training and while it is set. A cell called directly
    (the one-step decoder) has none and is Keras' own cell.
    """

    def _init_drop(self, weight_dropout: float, seed: int | None) -> None:
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        self.weight_dropout, self.weight_seed = float(weight_dropout), seed
        self.weight_seed_generator = keras.random.SeedGenerator(seed)
        self.dropped_recurrent_kernel = None

    def drop_recurrent_kernel(self) -> None:
        """Draws this batch's dropped recurrent kernel (kept weights scaled by ``1 / (1 - weight_dropout)``)."""
        self.dropped_recurrent_kernel = keras.random.dropout(self.recurrent_kernel, self.weight_dropout,
                                                             seed=self.weight_seed_generator)

    def clear_dropped_kernel(self) -> None:
        self.dropped_recurrent_kernel = None

    def _dropped(self, training):
        return self.dropped_recurrent_kernel if training else None

    def _drop_config(self) -> dict:
        return {"weight_dropout": self.weight_dropout, "weight_seed": self.weight_seed}


@keras.saving.register_keras_serializable(package="tfs2s")
class DropConnectGRUCell(_DropConnect, keras.layers.GRUCell):
    """A ``GRUCell`` (``reset_after``, the Keras default) whose hidden-to-hidden matrix is DropConnect-ed in
    training (Wan et al. 2013; Merity et al. 2018).

    Args:
        units: Hidden size.
        weight_dropout: Share of ``recurrent_kernel``'s weights dropped per batch.
        weight_seed: Seed of the weight masks.
        **kwargs: ``GRUCell`` arguments.
    """

    def __init__(self, units: int, weight_dropout: float = 0.0, weight_seed: int | None = None, **kwargs):
        super().__init__(units, **kwargs)
        if not self.reset_after:
            raise ValueError("DropConnectGRUCell needs reset_after=True")
        self._init_drop(weight_dropout, weight_seed)

    def call(self, inputs, states, training=False):
        recurrent = self._dropped(training)
        if recurrent is None:
            return super().call(inputs, states, training=training)
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        if 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        # Keras' GRUCell (implementation 2, reset_after) with the dropped recurrent kernel.
        matrix_x = ops.matmul(inputs, self.kernel)
        matrix_inner = ops.matmul(h_tm1, recurrent)
        if self.use_bias:
            matrix_x = ops.add(matrix_x, self.bias[0])
            matrix_inner = matrix_inner + self.bias[1]
        x_z, x_r, x_h = ops.split(matrix_x, 3, axis=-1)
        recurrent_z, recurrent_r, recurrent_h = ops.split(matrix_inner, 3, axis=-1)
        z = self.recurrent_activation(x_z + recurrent_z)
        r = self.recurrent_activation(x_r + recurrent_r)
        hh = self.activation(x_h + r * recurrent_h)
        h = z * h_tm1 + (1 - z) * hh
        return h, ([h] if isinstance(states, (list, tuple)) else h)

    def get_config(self):
        return {**super().get_config(), **self._drop_config()}


@keras.saving.register_keras_serializable(package="tfs2s")
class DropConnectLSTMCell(_DropConnect, keras.layers.LSTMCell):
    """An ``LSTMCell`` whose hidden-to-hidden matrix is DropConnect-ed in training (AWD-LSTM's weight drop).

    Args:
        units: Hidden size.
        weight_dropout: Share of ``recurrent_kernel``'s weights dropped per batch.
        weight_seed: Seed of the weight masks.
        **kwargs: ``LSTMCell`` arguments.
    """

    def __init__(self, units: int, weight_dropout: float = 0.0, weight_seed: int | None = None, **kwargs):
        super().__init__(units, **kwargs)
        self._init_drop(weight_dropout, weight_seed)

    def call(self, inputs, states, training=False):
        recurrent = self._dropped(training)
        if recurrent is None:
            return super().call(inputs, states, training=training)
        h_tm1, c_tm1 = states[0], states[1]
        if 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        # Keras' LSTMCell (implementation 2, gates i, f, c, o) with the dropped recurrent kernel.
        z = ops.add(ops.matmul(inputs, self.kernel), ops.matmul(h_tm1, recurrent))
        if self.use_bias:
            z = ops.add(z, self.bias)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=1)
        i, f, o = self.recurrent_activation(z_i), self.recurrent_activation(z_f), self.recurrent_activation(z_o)
        c = f * c_tm1 + i * self.activation(z_c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), **self._drop_config()}


@keras.saving.register_keras_serializable(package="tfs2s")
class DropConnectRNN(keras.layers.RNN):
    """A GRU or LSTM layer over a DropConnect cell: in training, one dropped recurrent kernel per call (batch).

    Keras' ``GRU`` / ``LSTM`` layers can run fused (cuDNN) kernels that read ``cell.recurrent_kernel`` directly,
    past the cell's ``call``; this layer always runs the cell's own step, so the dropped copy is what the
    recurrence uses (on a GPU it therefore runs without cuDNN, in training and inference). Without training it
    computes what ``GRU`` / ``LSTM``'s step loop computes (bit for bit on a CPU, where they run that loop too).

    Args:
        units: Hidden size.
        cell_type: ``gru`` (a ``DropConnectGRUCell``) or ``lstm`` (a ``DropConnectLSTMCell``).
        weight_dropout: Share of the recurrent kernel's weights dropped per batch.
        weight_seed: Seed of the weight masks.
        **kwargs: ``keras.layers.RNN`` arguments (``return_sequences``, ``return_state``, ``go_backwards``, ...).
    """

    CELLS = {"gru": DropConnectGRUCell, "lstm": DropConnectLSTMCell}

    def __init__(self, units: int, cell_type: str = "gru", weight_dropout: float = 0.0,
                 weight_seed: int | None = None, **kwargs):
        if cell_type not in self.CELLS:
            raise ValueError(f"cell_type must be one of {sorted(self.CELLS)}, got {cell_type!r}")
        kwargs.pop("cell", None)  # made from the arguments above (a saved config may still name one)
        cell = self.CELLS[cell_type](units, weight_dropout=weight_dropout, weight_seed=weight_seed,
                                     dtype=kwargs.get("dtype"), name=f"{cell_type}_cell")  # Keras' names
        super().__init__(cell, **kwargs)
        self.units, self.cell_type = int(units), cell_type

    def call(self, sequences, initial_state=None, mask=None, training=False):
        drop = bool(training) and self.cell.weight_dropout > 0
        if drop:
            self.cell.drop_recurrent_kernel()
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        finally:
            if drop:
                self.cell.clear_dropped_kernel()

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        return {**config, "units": self.units, "cell_type": self.cell_type,
                "weight_dropout": self.cell.weight_dropout, "weight_seed": self.cell.weight_seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
