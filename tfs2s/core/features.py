"""Feature names, defined once.

The same strings are ``keras.Input`` names, ``tf.data`` dictionary keys and serving signature input names.
"""

ENCODER_TOKEN_IDS = "encoder_token_ids"
DECODER_TOKEN_IDS = "decoder_token_ids"
SOURCE_TEXT = "text"
# Non-text inputs and outputs (image-to-sequence and forecasting models).
ENCODER_IMAGE = "encoder_image"  # float32 [batch, height, width, channels], values in [0, 1]
IMAGE_BYTES = "image_bytes"  # encoded PNG/JPEG strings [batch] (TF Serving REST: {"b64": ...})
ENCODER_VALUES = "encoder_values"  # float32 [batch, lookback, features]
DECODER_VALUES = "decoder_values"  # float32 [batch, horizon, features]: previous values (teacher forcing)

# Special tokens: fixed ids shared by every tokenizer (id 0 is padding, so Keras masks can use ``mask_zero``).
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
