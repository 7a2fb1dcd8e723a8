"""Dialogue corpora as (context -> response) pairs for a conversational model (Vinyals & Le 2015).

A dialogue is a list of utterances. ``make_examples`` turns each utterance after the first into an example whose
source is up to ``context_turns`` previous utterances joined by a separator token, and whose target is the
utterance itself, so the translation pipeline (tokenizers, models, decoding, export) serves chat unchanged.

Readers (each fails with a ``DataError`` naming the file, and the line where the format allows):

* ``read_dailydialog``: DailyDialog's ``dialogues_*.txt[.gz]``, one dialogue a line, utterances ended by
  ``__eou__`` (official train / validation splits);
* ``read_topical_chat``: Topical-Chat's ``*.json[.gz]`` (conversation id -> ``content`` list of messages);
* ``read_chatterbot``: chatterbot-corpus YAML files (``conversations``: lists of alternating lines).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Iterable, Sequence

from tfs2s.core.errors import DataError
from tfs2s.data.parallel import open_text

logger = logging.getLogger(__name__)

Dialogue = list[str]
EOU = "__eou__"


def _open(path: str):
    if not os.path.exists(path):
        raise DataError(f"dialogue file not found: {path}")
    return open_text(path)


def read_dailydialog(path: str) -> list[Dialogue]:
    """Reads a DailyDialog text file: one dialogue a line, each utterance ended by `` __eou__``.

    Raises:
        DataError: A non-empty line that does not end with ``__eou__`` or holds fewer than two utterances
            (the message names the file and the 1-based line).
    """
    dialogues = []
    with _open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if not line.endswith(EOU):
                raise DataError(f"{path}:{number}: a DailyDialog line must end with {EOU!r}: {line[:80]!r}")
            turns = [t.strip() for t in line.split(EOU)[:-1]]
            if len(turns) < 2 or not all(turns):
                raise DataError(f"{path}:{number}: expected at least two non-empty utterances separated by {EOU!r}")
            dialogues.append(turns)
    return dialogues


def read_topical_chat(path: str) -> list[Dialogue]:
    """Reads a Topical-Chat conversations file (JSON, optionally gzipped), in file order.

    Raises:
        DataError: Invalid JSON, or a conversation without a ``content`` list of ``message`` strings (the
            message names the file and the conversation id).
    """
    with _open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of conversations keyed by id")
    dialogues = []
    for conversation_id, conversation in data.items():
        content = conversation.get("content") if isinstance(conversation, dict) else None
        if not isinstance(content, list) or not all(isinstance(t, dict) and isinstance(t.get("message"), str)
                                                    for t in content):
            raise DataError(f"{path}: conversation {conversation_id!r} has no 'content' list of messages")
        turns = [t["message"].strip() for t in content]
        dialogues.append([t for t in turns if t])
    return dialogues


def read_chatterbot(paths: str | Sequence[str]) -> list[Dialogue]:
    """Reads chatterbot-corpus YAML files (a file, a folder of ``.yml`` files, or a list of files).

    Raises:
        DataError: Invalid YAML, or no ``conversations`` list (names the file and, for YAML errors, the line).
            A single conversation that is not a list of lines is skipped with a warning naming file and index.
    """
    import yaml

    if isinstance(paths, str):
        paths = sorted(os.path.join(paths, p) for p in os.listdir(paths) if p.endswith((".yml", ".yaml"))) \
            if os.path.isdir(paths) else [paths]
    dialogues = []
    for path in paths:
        with _open(path) as f:
            try:
                # BaseLoader keeps every scalar a string: YAML 1.1 would turn replies such as "Yes", "No" or
                # "On" into booleans, and "42" into a number.
                data = yaml.load(f, Loader=yaml.BaseLoader)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f":{mark.line + 1}" if mark else ""
                raise DataError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        conversations = (data or {}).get("conversations", []) if isinstance(data, dict) else None
        if not isinstance(conversations, list):
            raise DataError(f"{path}: expected a 'conversations' list")
        for index, conversation in enumerate(conversations):
            if not isinstance(conversation, list) or not all(isinstance(t, str) for t in conversation):
                # The published corpus has such slips (english/trivia.yml: an entry written as one string);
                # one bad entry should not cost the rest of the file.
                logger.warning("%s: conversation %d is not a list of lines; skipped", path, index)
                continue
            turns = [t.strip() for t in conversation]
            if len(turns) >= 2:
                dialogues.append(turns)
    return dialogues


def make_examples(dialogues: Iterable[Dialogue], context_turns: int, separator: str) -> list[tuple[str, str]]:
    """(context, response) pairs: every utterance after the first, with up to ``context_turns`` before it.

    Args:
        dialogues: Lists of utterances.
        context_turns: Previous utterances joined into the source (at least 1; ``data.context_turns``).
        separator: Token placed between context utterances (``data.turn_separator``).
    """
    if context_turns < 1:
        raise ValueError(f"context_turns must be at least 1, got {context_turns}")
    joiner = f" {separator} "
    examples = []
    for turns in dialogues:
        for i in range(1, len(turns)):
            context = [t for t in turns[max(0, i - context_turns):i] if t]
            if context and turns[i]:
                examples.append((joiner.join(context), turns[i]))
    return examples
