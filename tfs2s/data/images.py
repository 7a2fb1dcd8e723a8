"""Image input for image-to-sequence models (captcha OCR, captioning): reading, splitting, decoding, batches.

Examples are ``(encoded_image_bytes, text)`` pairs. Images stay encoded (PNG/JPEG) until ``tf.data`` or a serving
signature decodes them with ``decode_images`` (which also resizes images of another size to the model's), so
training and serving share one decoding path. Batches mirror
``tfs2s.data``: ``({encoder_image, decoder_token_ids}, targets, sample_weight)``.
"""

from __future__ import annotations

import csv
import os
import tarfile
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.text_data import add_bos, add_eos
from tfs2s.core.tokenizers import Tokenizer
from tfs2s.core.errors import ImageDataError  # noqa: F401  (raised here; importable from here)

AUTOTUNE = tf.data.AUTOTUNE
Example = tuple[bytes, str]
_TARS = (".tar.gz", ".tgz", ".tar")
_MAX_SHIFT = 3  # pixels of random translation: keeps every captcha character inside the 200x50 frame


# --------------------------------------------------------------------------- reading
def _png_members(archive: str) -> list[tuple[str, bytes]]:
    with tarfile.open(archive, "r:*") as tar:  # the whole archive is read in memory: no extraction on disk
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()
                if m.isfile() and m.name.lower().endswith(".png") and not os.path.basename(m.name).startswith(".")]


def read_captcha(path: str) -> list[Example]:
    """Reads labelled images whose file name (without ``.png``) is the label, e.g. ``captcha_images_v2/2b827.png``.

    Args:
        path: A ``.tar.gz`` of ``<label>.png`` members, a folder of ``<label>.png`` files, or a folder holding
            exactly one such archive (so ``<data_dir>/captcha-images-v2`` works).

    Returns:
        ``(png_bytes, label)`` pairs sorted by label (then member name), so runs see the same order.

    Raises:
        ImageDataError: ``path`` is missing, holds several archives, or holds no images.
    """
    if not os.path.exists(path):
        raise ImageDataError(f"captcha images not found: {path}")
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        pngs = [n for n in names if n.lower().endswith(".png") and not n.startswith(".")]
        tars = [n for n in names if n.lower().endswith(_TARS)]
        if not pngs and len(tars) > 1:
            raise ImageDataError(f"{path} holds several archives ({', '.join(tars)}); pass one of them")
        if not pngs and tars:
            return read_captcha(os.path.join(path, tars[0]))
        members = []
        for n in pngs:
            with open(os.path.join(path, n), "rb") as f:
                members.append((n, f.read()))
    else:
        try:
            members = _png_members(path)
        except (tarfile.TarError, OSError) as e:
            raise ImageDataError(f"{path} is not a readable tar archive: {e}") from e
    if not members:
        raise ImageDataError(f"no <label>.png images in {path}")
    labelled = sorted((os.path.splitext(os.path.basename(name))[0], name, data) for name, data in members)
    return [(data, label) for label, _, data in labelled]


_CSV_HEADERS = ("image,caption", "image,text")


def _parse_caption_line(line: str, csv_format: bool) -> tuple[str, str, str]:
    """``(image, caption, problem)`` of one line; ``problem`` is empty when the line is well formed."""
    if csv_format:  # "<image>,<caption>": captions may hold commas, image names do not (unless quoted)
        if line.lstrip().startswith('"'):  # a CSV-quoted image path
            fields = next(csv.reader([line]))
            image, sep, caption = fields[0], "," if len(fields) > 1 else "", ",".join(fields[1:])
        else:
            image, sep, caption = line.partition(",")
        caption = caption.strip()
        if len(caption) >= 2 and caption[0] == caption[-1] == '"':  # a CSV-quoted caption
            caption = next(csv.reader([caption]))[0]
    else:  # "<image>#<n>\t<caption>"
        image, sep, caption = line.partition("\t")
        stem, hash_, number = image.rpartition("#")
        image = stem if hash_ and number.strip().isdigit() else image
    image, caption = image.strip(), caption.strip()
    if not sep:
        return image, caption, "expected " + ("<image>,<text>" if csv_format else "<image>#<n><TAB><caption>")
    if not image:
        return image, caption, "no image name before the separator"
    if not caption:
        return image, caption, f"the text of image {image} is empty"
    return image, caption, ""


def read_captions(images_dir: str, captions_file: str, *, csv_format: bool | None = None,
                  channels: int | None = None) -> list[Example]:
    """Reads a captioning set: one ``(image bytes, text)`` example per caption line.

    Formats: ``Flickr8k.token.txt`` (``<image>#<n><TAB><caption>``) and CSV (``<image>,<text>``, split on the
    first comma, so texts may hold commas; a text or an image path may also be CSV-quoted). With
    ``csv_format=None`` the format is detected from the first line: CSV when it is the header ``image,caption``
    (Kaggle's ``captions.txt``) or ``image,text``. With ``csv_format=True`` (``data.corpus: files``) that header
    is optional. Image paths are relative to ``images_dir`` (subfolders allowed). Blank lines are skipped. Each
    image is read once; its captions share the bytes.

    Args:
        images_dir: Folder the image paths are relative to.
        captions_file: The captions file.
        csv_format: ``True`` for CSV, ``False`` for the Flickr8k token format, ``None`` to detect.
        channels: When given, every image is decoded once here (``check_image``), so an unreadable one fails
            naming the captions file, its line and the image.

    Raises:
        ImageDataError: A missing folder or file, a malformed line (no separator, no image name or an empty text;
            names the file and line number), a caption of an image that is not in ``images_dir`` or is not an
            image (names the file, line and image), or no captions at all.
    """
    for p in (images_dir, captions_file):
        if not os.path.exists(p):
            raise ImageDataError(f"not found: {p}")
    images: dict[str, bytes] = {}
    examples = []
    with open(captions_file, encoding="utf-8-sig") as f:  # -sig: tolerate a byte-order mark
        lines = f.read().splitlines()
    first = next((line for line in lines if line.strip()), "")
    has_header = first.strip().replace(" ", "").lower() in _CSV_HEADERS
    csv_format = has_header if csv_format is None else csv_format
    header_seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if csv_format and has_header and not header_seen:
            header_seen = True
            continue
        image, caption, problem = _parse_caption_line(line, csv_format)
        if problem:
            raise ImageDataError(f"{captions_file} line {number}: {problem}, got {line[:80]!r}")
        if image not in images:
            image_path = os.path.join(images_dir, image)
            if not os.path.isfile(image_path):
                raise ImageDataError(f"{captions_file} line {number}: image {image} is not in {images_dir}")
            with open(image_path, "rb") as g:
                images[image] = g.read()
            if channels is not None:
                check_image(images[image], channels, name=f"{captions_file} line {number}: image {image_path}")
        examples.append((images[image], caption))
    if not examples:
        raise ImageDataError(f"{captions_file}: no captions")
    return examples


def _image_groups(examples: Sequence[Example]) -> list[list[Example]]:
    groups: dict[bytes, list[Example]] = {}
    for example in examples:
        groups.setdefault(example[0], []).append(example)
    return list(groups.values())


def _share(count: int, fraction: float, room: int) -> int:
    """``round(count * fraction)`` groups, at least one when the fraction is positive, at most ``room``."""
    size = round(count * fraction)
    if fraction > 0 and count >= 2:
        size = max(size, 1)
    return max(0, min(size, room))


def split_examples(examples: Sequence[Example], validation_fraction: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded split into ``(training, validation)``.

    Examples with the same image bytes (the captions of one image) stay on one side, otherwise validation would
    score images seen in training. Groups are permuted with ``numpy.random.RandomState(seed)``; validation gets
    ``round(groups * validation_fraction)`` of them, at least one when the fraction is positive, and training
    keeps at least one. With distinct images (captcha) a group is one example.

    Raises:
        ValueError: ``validation_fraction`` is outside ``[0, 1)``.
    """
    training, validation, _ = split_three(examples, validation_fraction, 0.0, seed)
    return training, validation


def split_three(examples: Sequence[Example], validation_fraction: float, test_fraction: float,
                seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """Seeded split into ``(training, validation, test)``, as ``split_examples`` (the captions of one image stay
    on one side; with ``test_fraction=0`` the result is ``split_examples``' plus an empty test list).

    The permuted groups give validation its ``round(groups * validation_fraction)`` first, then test its
    ``round(groups * test_fraction)``; each share is at least one group when its fraction is positive, and
    training keeps at least one group.

    Raises:
        ValueError: A fraction outside ``[0, 1)``, or fractions that leave training nothing.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if not 0.0 <= test_fraction < 1.0 or validation_fraction + test_fraction >= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1) and leave a training share, got {test_fraction}")
    groups = _image_groups(examples)
    count = len(groups)
    order = np.random.RandomState(seed).permutation(count)
    n_val = _share(count, validation_fraction, count - 1)
    n_test = _share(count, test_fraction, count - 1 - n_val)
    parts = (order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test])
    training, validation, test = ([e for i in part for e in groups[i]] for part in parts)
    return training, validation, test


# --------------------------------------------------------------------------- decoding (in-graph)
def resize_pixels(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """``[h, w, C]`` (or ``[B, h, w, C]``) float pixels -> ``height x width``, bilinear, antialiased when shrinking.

    The image is stretched to the model's size (no crop, no padding). One already of that size is returned as
    it is, bit for bit, so images of the configured size read exactly as they did before resizing existed.
    """
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[-3], height), tf.equal(shape[-2], width))
    resized = tf.cond(same, lambda: image,
                      lambda: tf.image.resize(image, [height, width], method="bilinear", antialias=True))
    return tf.clip_by_value(resized, 0.0, 1.0)  # antialiasing may overshoot [0, 1] a little


def _decode_one(data: tf.Tensor, height: int, width: int, channels: int) -> tf.Tensor:
    # decode_image handles PNG/JPEG/GIF/BMP; channels=1 turns RGB(A) into luma (alpha dropped), dtype=float32
    # scales to [0, 1] (16-bit PNGs included).
    image = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
    image = resize_pixels(image, height, width)
    image.set_shape([height, width, channels])
    return image


def decode_images(image_bytes: tf.Tensor, height: int, width: int, channels: int) -> tf.Tensor:
    """Decodes a ``[batch]`` string tensor of PNG/JPEG images to float32 ``[batch, height, width, channels]``.

    Runs in graphs (``tf.data``, ``tf.function``, exported signatures), so training, the ``Captioner`` and the
    served ``image_bytes`` signature read an image alike: decoded, converted to ``channels`` (RGB(A) to luma for
    1, gray to RGB for 3), values / 255, and resized to ``height x width`` with ``resize_pixels`` when it has
    another size. Corrupt bytes raise TF's own decode error (``check_image`` gives a clearer one host-side).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.map_fn(lambda data: _decode_one(data, height, width, channels), image_bytes,
                     fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))


def check_image(data: bytes, channels: int = 1, name: str = "image") -> tuple[int, int]:
    """Host-side check that ``data`` is a decodable image (any size: the model resizes).

    Returns:
        The image's ``(height, width)`` before resizing.

    Raises:
        ImageDataError: Not a PNG/JPEG/GIF/BMP image; the message names ``name``.
    """
    try:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise ImageDataError(f"{name} is not a PNG/JPEG image ({e.message.strip()[:120]})") from None
    if min(image.shape[:2]) < 1:
        raise ImageDataError(f"{name} has no pixels ({image.shape[1]}x{image.shape[0]})")
    return int(image.shape[0]), int(image.shape[1])


# --------------------------------------------------------------------------- datasets
def _augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Light, text-preserving changes: brightness, contrast and a shift of at most ``_MAX_SHIFT`` pixels (no
    flips or rotations: a mirrored captcha is another text). Stateless ops, so a seed fixes the result."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_brightness(image, 0.1, seeds[0])
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[1])
    # Mirror-pad then crop back: the margin repeats the nearby background instead of adding black bars.
    padded = tf.pad(image, [[_MAX_SHIFT, _MAX_SHIFT], [_MAX_SHIFT, _MAX_SHIFT], [0, 0]], mode="SYMMETRIC")
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seeds[2])
    return tf.clip_by_value(image, 0.0, 1.0)


def image_dataset(examples: Sequence[Example], target_tokenizer: Tokenizer, *, height: int, width: int,
                  channels: int, batch_size: int, max_target_length: int, training: bool = False, seed: int = 0,
                  augment: bool = False, chunk: int = 1024) -> tf.data.Dataset:
    """``(image_bytes, text)`` examples -> ``({encoder_image, decoder_token_ids}, targets, sample_weight)`` batches.

    Decoder ids are ``<s>`` + target ids and targets are target ids + ``</s>`` (at most ``max_target_length``,
    ``</s>`` included), padded with 0; ``sample_weight`` is 1 on real target positions. Decoded images are cached.
    Training datasets are shuffled (seeded, reshuffled each epoch) and, with ``augment``, lightly augmented
    (seeded too, different each epoch); evaluation datasets keep the order. Images of another size than
    ``height x width`` are resized (``decode_images``); a corrupt one fails the iteration (``ImageJob`` checks
    every image host-side first, naming it).
    """
    if not examples:
        raise ImageDataError("no examples to build an image dataset from")
    if max_target_length < 1:
        raise ValueError(f"max_target_length must be at least 1, got {max_target_length}")
    ds = tf.data.Dataset.from_tensor_slices(([e[0] for e in examples], [e[1] for e in examples]))

    def tokenize(index, example):
        images, texts = example
        ids = target_tokenizer.tokenize(texts)[:, : max_target_length - 1]
        target_in, target_out = add_bos(ids), add_eos(ids)  # the same row lengths
        return (index, images, tf.cast(target_in.to_tensor(), tf.int32), tf.cast(target_out.to_tensor(), tf.int32),
                tf.cast(target_out.row_lengths(), tf.int32))

    def decode(index, data, target_in, target_out, length):
        return _decode_one(data, height, width, channels), target_in[:length], target_out[:length]

    # Text is tokenized in chunks (string ops are far cheaper per batch), images decoded one by one in parallel.
    ds = ds.enumerate().batch(chunk).map(tokenize, num_parallel_calls=AUTOTUNE).unbatch()
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
        if augment:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(lambda ex, s: (_augment(ex[0], s),) + ex[1:],
                                                      num_parallel_calls=AUTOTUNE)
    ds = ds.padded_batch(batch_size, padded_shapes=([height, width, channels], [None], [None]))

    def split(images, target_in, target_out):
        return ({F.ENCODER_IMAGE: images, F.DECODER_TOKEN_IDS: target_in}, target_out,
                tf.cast(tf.not_equal(target_out, F.PAD_ID), tf.float32))

    return ds.map(split, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
