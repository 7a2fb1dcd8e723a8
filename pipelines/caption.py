"""Image-to-sequence pipeline: read captcha images (200x50 PNG, the file name is the text) with a convolutional
encoder and an attentional GRU decoder; report exact-sequence accuracy and character error rate on a held-out
validation split (fixed seed); plot the attention over an image per output character; export (SavedModel taking
``image_bytes`` and float images, ONNX over float images) and check onnxruntime reads what TensorFlow reads.

    python pipelines/caption.py                                              # captcha, about 20 minutes on 2 cores
    python pipelines/caption.py --set data.corpus=image_captions --set data.tokenizer=word \\
        --data-dir /path/to/flickr8k --set data.image_height=... --set data.image_width=...
    python pipelines/caption.py --set training.epochs=1 --set data.limit=64 --run-dir runs/caption_smoke  # smoke

Anchor: the keras-io "OCR model for reading Captchas" example (CNN + BiLSTM + CTC) on the same images.
Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    from tfs2s import pipeline

    p = pipeline.parser(__doc__, os.path.join(HERE, "configs", "captcha.yaml"), "runs/captcha")
    p.add_argument("--plot-path", default=None, help="attention plot of the first validation image "
                                                     "(default: <run-dir>/attention.png)")
    args = p.parse_args(argv)
    status = pipeline.train(args)
    if status:
        return status
    with open(os.path.join(args.run_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    print(f"\n# {summary['name']}: {summary['train_images']} training / {summary['validation_images']} validation "
          f"images, {summary['train_minutes']} training minutes")
    print("decoding | exact % | CER %")
    for strategy, s in summary["validation"].items():
        print(f"{strategy} | {s['exact_accuracy']} | {s['character_error_rate']}")

    import numpy as np

    from tfs2s.core.plots import plot_image_alignment
    from tfs2s.tasks.image import task as captioning
    from tfs2s.data import images

    captioner = pipeline.load_run(args.run_dir, args.data_dir)
    cfg = captioner.config
    _, validation = captioning.split(cfg, captioning.load_examples(cfg))
    sample = validation[:8]
    texts, details = captioner.caption([e[0] for e in sample], return_alignment=True)
    pixels = images.decode_images(np.array([e[0] for e in sample], object), *captioner.image_shape).numpy()
    plot = plot_image_alignment(pixels[0], details[0]["alignment"], details[0]["tokens"],
                                args.plot_path or os.path.join(args.run_dir, "attention.png"))
    print(f"attention over the image per output character ({sample[0][1]!r} read as {texts[0]!r}): {plot}")

    status, exported = pipeline.export(args)
    if status:
        return status
    import tensorflow as tf

    loaded = tf.saved_model.load(exported)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([e[0] for e in sample]))
    report = {"export": exported, "samples": [
        {"reference": e[1], "served": t.decode("utf-8")} for e, t in zip(sample, served["text"].numpy())]}
    if not args.no_onnx:
        from tfs2s.export.onnx.runtime import OnnxCaptioner

        onnx = OnnxCaptioner(exported)
        report["onnx_equals_savedmodel"] = {
            s: bool(np.array_equal(onnx.caption_ids(pixels, s)["tokens"], loaded.signatures[f"caption_image_{s}"](
                encoder_image=tf.constant(pixels))["tokens"].numpy())) for s in ("greedy", "beam")}
        report["onnx_captions"] = onnx.caption(pixels, "beam")
    print(json.dumps(report, indent=1))
    with open(os.path.join(args.run_dir, "export_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
