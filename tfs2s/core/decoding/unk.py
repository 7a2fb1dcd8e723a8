"""Unknown-word replacement from attention alignments (Jean et al. 2015; Luong et al. 2015)."""

from __future__ import annotations

from typing import Sequence


def replace_unknown_words(output_tokens: Sequence[str], alignment, source_words: Sequence[str],
                          unk: str = "<unk>", reversed_source: bool = False) -> list[str]:
    """Replaces each ``<unk>`` output token by the source word it attends to most.

    Args:
        output_tokens: The decoded tokens (without ``</s>``).
        alignment: ``[output_length, encoder_length]`` attention weights of those tokens.
        source_words: The normalised source words as the encoder read them, before any reversal (the encoder
            input is these words, truncated, possibly reversed, then ``</s>``).
        unk: The unknown-word token.
        reversed_source: Whether the encoder read the words reversed.
    """
    words = list(source_words)
    out = []
    for t, token in enumerate(output_tokens):
        if token != unk or not words:
            out.append(token)
            continue
        row = list(alignment[t][: len(words)])
        position = max(range(len(row)), key=row.__getitem__)
        out.append(words[len(words) - 1 - position] if reversed_source else words[position])
    return out
