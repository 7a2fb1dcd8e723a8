import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.data.corpora import default_data_dir
from tfs2s.data.images import (ImageDataError, check_image, decode_images, image_dataset, read_captcha,
                               read_captions, resize_pixels, split_examples, split_three)
from tfs2s.core.tokenizers import WordTokenizer

H, W = 50, 200
CAPTCHA_ALPHABET = set("2345678bcdefgmnpwxy")


def png(height=H, width=W, value=0, channels=4):
    """A PNG whose pixel (r, c) has gray level (value + r + c) % 256, alpha 255."""
    rows, cols = np.mgrid[:height, :width]
    gray = ((value + rows + cols) % 256).astype(np.uint8)
    pixels = np.stack([gray] * min(channels, 3) + [np.full_like(gray, 255)] * (channels == 4), axis=-1)
    return tf.io.encode_png(pixels).numpy()


@pytest.fixture
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(list(F.SPECIAL_TOKENS) + list("abcde")) + "\n", encoding="utf-8")
    return WordTokenizer(str(vocab), name="target_tokenizer")


def test_read_captcha_real_data():
    base = default_data_dir()
    path = os.path.join(base, "captcha-images-v2") if base else None
    if path is None or not os.path.isdir(path):
        pytest.skip("../shared/data/captcha-images-v2 not found")
    examples = read_captcha(path)
    assert len(examples) == 936
    labels = [label for _, label in examples]
    assert labels == sorted(labels) and len(set(labels)) == 936
    assert all(len(label) == 5 and set(label) <= CAPTCHA_ALPHABET for label in labels)
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data, _ in examples)
    assert check_image(examples[0][0], 1, name=labels[0]) == (H, W)  # the real images are 200x50


def test_read_captcha_folder_and_tar(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    images = {"bc": png(value=1), "ab": png(value=2)}
    for label, data in images.items():
        (folder / f"{label}.png").write_bytes(data)
    (folder / "notes.txt").write_text("ignored")
    expected = [(images["ab"], "ab"), (images["bc"], "bc")]
    assert read_captcha(str(folder)) == expected

    archive = tmp_path / "data" / "set.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for label, data in images.items():
            info = tarfile.TarInfo(f"captcha/{label}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert read_captcha(str(archive)) == expected
    assert read_captcha(str(archive.parent)) == expected  # a folder holding one archive

    with pytest.raises(ImageDataError, match="not found"):
        read_captcha(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageDataError, match="no <label>.png images in .*empty"):
        read_captcha(str(empty))


def test_read_captions_both_formats(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"image a")
    (tmp_path / "b.jpg").write_bytes(b"image b")
    token = tmp_path / "Flickr8k.token.txt"
    token.write_text("a.jpg#0\tA dog runs .\na.jpg#1\tA dog , brown , runs .\n\nb.jpg#0\tTwo cats\n")
    expected = [(b"image a", "A dog runs ."), (b"image a", "A dog , brown , runs ."), (b"image b", "Two cats")]
    assert read_captions(str(tmp_path), str(token)) == expected

    kaggle = tmp_path / "captions.txt"
    kaggle.write_text('image,caption\na.jpg,A dog runs .\na.jpg,"A dog , brown , runs ."\n\nb.jpg,Two cats\n')
    assert read_captions(str(tmp_path), str(kaggle)) == expected


def test_read_captions_errors(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"image a")
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg#0\tfine\n\na.jpg#1 no tab here\n")
    with pytest.raises(ImageDataError, match=r"bad\.txt line 3"):
        read_captions(str(tmp_path), str(bad))
    bad.write_text("image,caption\na.jpg,fine\nno comma\n")
    with pytest.raises(ImageDataError, match=r"bad\.txt line 3"):
        read_captions(str(tmp_path), str(bad))
    bad.write_text("image,caption\na.jpg,fine\nzz.jpg,a caption\n")
    with pytest.raises(ImageDataError, match=r"bad\.txt line 3: image zz\.jpg is not in"):
        read_captions(str(tmp_path), str(bad))


def test_split_examples():
    examples = [(bytes([i]), str(i)) for i in range(10)]
    train, val = split_examples(examples, 0.2, seed=1)
    assert (len(train), len(val)) == (8, 2)
    assert sorted(train + val) == sorted(examples)
    assert (train, val) == split_examples(examples, 0.2, seed=1)
    assert (train, val) != split_examples(examples, 0.2, seed=2)
    assert len(split_examples(examples, 0.01, seed=0)[1]) == 1  # at least one
    assert split_examples(examples, 0.0, seed=0) == (split_examples(examples, 0.0, seed=0)[0], [])
    # The captions of one image stay on one side.
    captions = [(b"x", "one"), (b"x", "two"), (b"y", "three"), (b"z", "four")]
    for seed in range(10):
        train, val = split_examples(captions, 0.34, seed=seed)  # 1 of 3 images
        assert {d for d, _ in train}.isdisjoint({d for d, _ in val}) and len(train) + len(val) == 4
        assert len({d for d, _ in val}) == 1
    for fraction in (-0.1, 1.0):
        with pytest.raises(ValueError, match="validation_fraction"):
            split_examples(examples, fraction, seed=0)


def test_decode_images_rgba_to_gray_and_sizes():
    rgba = np.zeros([H, W, 4], np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 255, 0, 0, 255  # red
    rgba[:, W // 2:] = [255, 255, 255, 255]  # right half white
    data = tf.io.encode_png(rgba)
    images = decode_images(tf.stack([data, png(value=7)]), H, W, 1)
    assert images.shape == (2, H, W, 1) and images.dtype == tf.float32
    np.testing.assert_allclose(images[0, 0, 0, 0], 76 / 255, atol=1 / 255)  # luma of pure red: 0.299 * 255
    np.testing.assert_allclose(images[0, :, W // 2:], 1.0)
    rows, cols = np.mgrid[:H, :W]
    np.testing.assert_allclose(images[1, ..., 0], ((7 + rows + cols) % 256) / 255, atol=1e-6)

    serve = tf.function(lambda b: decode_images(b, H, W, 1), input_signature=[tf.TensorSpec([None], tf.string)])
    np.testing.assert_allclose(serve(tf.stack([data])), images[:1])
    assert serve(tf.constant([], tf.string)).shape == (0, H, W, 1)
    assert decode_images(tf.constant([], tf.string), H, W, 3).shape == (0, H, W, 3)

    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_images(tf.constant([b"not an image"]), H, W, 1)


def test_decode_images_resizes_other_sizes():
    """An image of another size is stretched to the model's (bilinear, antialiased); one of the model's size is
    read bit for bit, in eager code, in a tf.function and in a batch with resized ones."""
    small, large, exact = png(height=32, width=64, value=3), png(height=120, width=300, value=5), png(value=9)
    serve = tf.function(lambda b: decode_images(b, H, W, 1), input_signature=[tf.TensorSpec([None], tf.string)])
    for fn in (lambda b: decode_images(b, H, W, 1), serve):
        out = fn(tf.constant([small, large, exact])).numpy()
        assert out.shape == (3, H, W, 1)
        for i, data in enumerate((small, large)):
            pixels = tf.io.decode_image(data, channels=1, dtype=tf.float32)
            expected = tf.clip_by_value(tf.image.resize(pixels, [H, W], antialias=True), 0, 1)
            np.testing.assert_allclose(out[i], expected, atol=1e-6)
        exact_pixels = tf.io.decode_image(exact, channels=1, dtype=tf.float32).numpy()
        np.testing.assert_array_equal(out[2], exact_pixels)
    # A gray image read as RGB: three equal channels, resized.
    rgb = decode_images(tf.constant([png(height=10, width=30, channels=1)]), 20, 60, 3).numpy()
    assert rgb.shape == (1, 20, 60, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    np.testing.assert_array_equal(resize_pixels(tf.constant(exact_pixels), H, W), exact_pixels)


def test_check_image():
    assert check_image(png(), 1) == (H, W)
    assert check_image(png(height=32, width=64), 3, name="small.png") == (32, 64)  # any size: the model resizes
    with pytest.raises(ImageDataError, match="upload.png is not a PNG/JPEG image"):
        check_image(b"\x89PNG garbage", 1, name="upload.png")


def _examples():
    return [(png(value=10 * i), text) for i, text in enumerate(["a b c", "d", "a b c d e a", "e e"])]


def test_image_dataset_batches(tokenizer):
    ds = image_dataset(_examples(), tokenizer, height=H, width=W, channels=1, batch_size=3, max_target_length=5)
    batches = list(ds)
    assert [b[1].shape[0] for b in batches] == [3, 1]
    features, targets, weights = batches[0]
    assert features[F.ENCODER_IMAGE].shape == (3, H, W, 1) and features[F.ENCODER_IMAGE].dtype == tf.float32
    assert features[F.DECODER_TOKEN_IDS].dtype == tf.int32 and targets.dtype == tf.int32
    assert weights.dtype == tf.float32
    # "a b c d e a" is cut to 4 tokens + </s> (max_target_length 5); ids: a=4 ... e=8.
    np.testing.assert_array_equal(features[F.DECODER_TOKEN_IDS], [[2, 4, 5, 6, 0], [2, 7, 0, 0, 0], [2, 4, 5, 6, 7]])
    np.testing.assert_array_equal(targets, [[4, 5, 6, 3, 0], [7, 3, 0, 0, 0], [4, 5, 6, 7, 3]])
    np.testing.assert_array_equal(weights, (targets.numpy() != 0).astype(np.float32))
    rows, cols = np.mgrid[:H, :W]
    np.testing.assert_allclose(features[F.ENCODER_IMAGE][1, ..., 0], ((10 + rows + cols) % 256) / 255, atol=1e-6)


def test_image_dataset_training_augmentation_is_seeded(tokenizer):
    def epochs(seed):
        ds = image_dataset(_examples(), tokenizer, height=H, width=W, channels=1, batch_size=2,
                           max_target_length=8, training=True, seed=seed, augment=True)
        return [[(x[F.ENCODER_IMAGE].numpy(), y.numpy()) for x, y, _ in ds] for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    for batch in first[0]:
        assert batch[0].shape[1:] == (H, W, 1)
        assert batch[0].min() >= 0.0 and batch[0].max() <= 1.0
    plain = next(iter(image_dataset(_examples(), tokenizer, height=H, width=W, channels=1, batch_size=4,
                                    max_target_length=8)))[0][F.ENCODER_IMAGE].numpy()
    assert not any(np.allclose(first[0][0][0][0], image) for image in plain)  # augmented
    for a, b in zip(sum(first, []), sum(again, [])):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    # Each epoch draws new augmentations: the same example (known by its target) looks different.
    by_target = [{tuple(y[y > 0]): x for images, targets in epoch for x, y in zip(images, targets)} for epoch in first]
    assert by_target[0].keys() == by_target[1].keys() and len(by_target[0]) == 4
    assert all(not np.array_equal(by_target[0][k], by_target[1][k]) for k in by_target[0])


def test_image_dataset_resizes_other_sizes(tokenizer):
    examples = _examples() + [(png(height=32, width=64, value=1), "a"), (png(height=100, width=90), "b")]
    ds = image_dataset(examples, tokenizer, height=H, width=W, channels=1, batch_size=8, max_target_length=4)
    (features, targets, _), = list(ds)
    expected = decode_images(tf.constant([e[0] for e in examples]), H, W, 1)
    np.testing.assert_array_equal(features[F.ENCODER_IMAGE], expected)
    assert targets.shape[0] == 6
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(image_dataset(examples + [(b"junk", "a")], tokenizer, height=H, width=W, channels=1, batch_size=8,
                           max_target_length=4))


def test_read_captions_csv_files_corpus(tmp_path):
    """``data.corpus: files``: ``image,text`` lines, the header optional, paths relative to the images folder."""
    (tmp_path / "img").mkdir()
    a, b = png(value=1), png(height=20, width=30, value=2)
    (tmp_path / "img" / "a.png").write_bytes(a)
    (tmp_path / "b.png").write_bytes(b)
    expected = [(a, "one, two"), (b, "three"), (a, "four")]
    for header in ("image,text\n", "", "image,caption\n"):
        captions = tmp_path / "captions.csv"
        captions.write_text(header + 'img/a.png,"one, two"\n\nb.png, three \n"img/a.png",four\n')
        assert read_captions(str(tmp_path), str(captions), csv_format=True, channels=1) == expected
    # Detected as CSV from its header without csv_format; the unquoted text keeps its commas.
    captions.write_text("image,text\nb.png,a, b\n")
    assert read_captions(str(tmp_path), str(captions)) == [(b, "a, b")]


@pytest.mark.parametrize("text, message", [
    ("image,text\nok.png,fine\nno comma here\n", r"c\.csv line 3: expected <image>,<text>"),
    ("ok.png,fine\nok.png,  \n", r"c\.csv line 2: the text of image ok\.png is empty"),
    ("ok.png,fine\n,a text\n", r"c\.csv line 2: no image name"),
    ("image,text\nok.png,fine\nmissing.png,a text\n", r"c\.csv line 3: image missing\.png is not in"),
    ("image,text\nbroken.png,a text\n", r"c\.csv line 2: image .*broken\.png is not a PNG/JPEG image"),
    ("", r"c\.csv: no captions"),
    ("image,text\n\n", r"c\.csv: no captions"),
])
def test_read_captions_csv_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "ok.png").write_bytes(png())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(ImageDataError, match=message):
        read_captions(str(tmp_path), str(tmp_path / "c.csv"), csv_format=True, channels=1)


def test_split_three():
    examples = [(bytes([i]), str(i)) for i in range(20)] + [(bytes([0]), "again")]
    train, val, test = split_three(examples, 0.1, 0.2, seed=5)
    assert (len({d for d, _ in val}), len({d for d, _ in test})) == (2, 4)
    assert sorted(train + val + test) == sorted(examples)
    images_of = [{d for d, _ in part} for part in (train, val, test)]
    assert all(images_of[i].isdisjoint(images_of[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    # Without a test share it is split_examples' split; seeded.
    assert split_three(examples, 0.1, 0.0, seed=5) == (*split_examples(examples, 0.1, seed=5), [])
    assert split_three(examples, 0.1, 0.2, seed=5) == (train, val, test)
    assert split_three(examples, 0.1, 0.2, seed=6) != (train, val, test)
    assert len(split_three(examples[:3], 0.01, 0.01, seed=0)[2]) == 1  # at least one image each
    with pytest.raises(ValueError, match="test_fraction"):
        split_three(examples, 0.5, 0.5, seed=0)
