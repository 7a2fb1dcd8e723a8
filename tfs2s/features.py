"""Feature names, defined once.

The same strings are ``keras.Input`` names, ``tf.data`` dictionary keys and serving signature input names.
"""

ENCODER_TOKEN_IDS = "encoder_token_ids"
DECODER_TOKEN_IDS = "decoder_token_ids"
TARGET_TOKEN_IDS = "target_token_ids"
SOURCE_TEXT = "text"

# Special tokens: fixed ids shared by every tokenizer (id 0 is padding, so Keras masks can use ``mask_zero``).
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
