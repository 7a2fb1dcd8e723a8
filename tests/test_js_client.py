"""The JavaScript client (clients/js/src/index.mjs) tokenizes and translates exactly as tfs2s does in Python.

A tiny word model (``conftest.client_export``, shared by the ``runtimes`` tests) is trained for a few steps, its
weights varied, and exported with the greedy ids graph tfs2s writes itself and the
beam graph tf2onnx converts. The export's metadata describes its tokenization (``host_tokenization``, built from
the steps the in-graph tokenizer runs); the JS client implements it in JavaScript regexes. ``node --test`` must
give TF's words and joined text on Multi30k test lines and odd inputs (rules 1 and 2, cased and lowercased), TF's
source ids, and ``Translator.translate_batch``'s greedy and beam text, n-best lists and scores, with ``<unk>``
replaced by the attended source word as Python does by default (the ids graphs return the alignment).
"""

import gzip
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import tokenizers
from tfs2s.export.tokenization import FORMAT, describe_side

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS_CLIENT = os.path.join(ROOT, "clients", "js")
MULTI30K_TEST = os.path.join(ROOT, "..", "shared", "data", "multi30k", "test_2016_flickr.de.gz")
ODD = ["", "   ", "\t\n", "Ein Mann ’s T-Shirt kostet 1,000 € (U.S.A.)!", "„Open“-Anzeige: 10:30 Uhr.", "I ’ m here",
       "ΟΔΟΣ ΣΟΦΟΣ İSTANBUL ẞ", "😀 Hund 😀", "中文的句子。", "x" * 5000, "?!...,,;", "<s> </s> <unk> <pad>",
       "a\u00a0b\u2028c\u0085d\u000be", "Obst- und Gemüse -42 #19 rot-, weiß-", 'er sagt " Hallo " und ‘ja’',
       "¿Cómo está? ¡Hola!", "ＡＢＣ full\u3000width", "tab\tand\r\nnewline", "ſ’S K’CLOCK I’ll", "e\u0301 combining",
       "I’ſt o’cloc\u212aa", "a\ufeffb zero\u200bwidth"]  # RE2's (?i) folds ſ and K (Kelvin); \s excludes U+FEFF


def _node():
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(JS_CLIENT, "node_modules", "onnxruntime-node")):
        pytest.skip("JS client check not run: needs `node` on PATH and `npm ci --ignore-scripts` in clients/js")
    return node


def _multi30k_lines(n: int) -> list[str]:
    if not os.path.exists(MULTI30K_TEST):
        pytest.skip(f"Multi30k test file missing: {MULTI30K_TEST}")
    with gzip.open(MULTI30K_TEST, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(n), f)]


def _normalization_cases(vocab_path: str, texts: list[str]) -> list[dict]:
    """TF's words and re-joined text of ``texts`` for each rules version, cased and lowercased."""
    out = []
    batch = tf.constant(texts)
    for rules in (1, 2):
        for lowercase in (False, True):
            tok = tokenizers.WordTokenizer(vocab_path, lowercase=lowercase, rules=rules)
            rows = [[w.decode("utf-8") for w in row if w != tokenizers.F.PAD.encode()]
                    for row in tok.words(batch).numpy()]  # an empty text's one <pad> word is no token
            dense = tf.ragged.constant(rows, dtype=tf.string, ragged_rank=1).to_tensor(default_value="")
            joined = tok.join(dense).numpy()
            out.append({"side": describe_side(tok), "texts": texts, "words": rows,
                        "joined": [j.decode("utf-8") for j in joined]})
    return out


@pytest.mark.runtimes  # on the shared client export (conftest.client_export, about 80 s once)
def test_export_describes_its_tokenization(client_export):
    path, translator = client_export
    with open(os.path.join(path, "assets.extra", "tfs2s_export.json"), encoding="utf-8") as f:
        described = json.load(f)["host_tokenization"]
    assert described["format"] == FORMAT and described["max_source_length"] == 12
    for side, tok in (("source", translator.source_tokenizer), ("target", translator.target_tokenizer)):
        record = described[side]
        assert record["supported"] and record["rules"] == tok.rules
        assert [tuple(s) for s in record["normalize"]] == list(tokenizers.normalize_steps(rules=tok.rules))
        assert os.path.exists(os.path.join(path, "assets", record["vocab"])), record["vocab"]
        # The steps alone (after UTF-8 repair) give the tokenizer's normalised text.
        texts = tf.constant(ODD[3:8])
        np.testing.assert_array_equal(tokenizers.apply_steps(texts, record["normalize"]).numpy(),
                                      tokenizers.normalize(texts, rules=tok.rules).numpy())


def _python_results(translator, sentences: list[str], strategy: str) -> list[dict]:
    """Python's text (``<unk>`` replaced, the default), n-best texts and scores of ``sentences``, one batch."""
    out = translator.translate_batch(sentences, strategy)
    return [{"text": str(texts[0]), "nbest": [str(t) for t in texts], "scores": scores.tolist()}
            for texts, scores in zip(out["text"], out["scores"])]


@pytest.mark.runtimes  # a Node run (about 10 s) on the shared client export; the Node graph checks of
# tests/test_onnx_portable.py run by default
def test_js_client_matches_python(client_export, tmp_path):
    node = _node()
    path, translator = client_export
    sentences = _multi30k_lines(60) + ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", ""]
    ids = translator.encode(tf.constant(sentences)).numpy()
    greedy = _python_results(translator, sentences, "greedy")
    beam = _python_results(translator, sentences, "beam")
    raw = translator.translate(sentences, strategy="greedy", replace_unknown=False)
    assert any(r["text"] for r in greedy), "the tiny model translates everything to nothing: nothing to compare"
    # The comparison covers <unk> replacement only if some output held an <unk> that was replaced.
    assert translator.replaces_unknown and any(r != g["text"] for r, g in zip(raw, greedy)), "no <unk> replaced"
    vocab = os.path.join(path, "assets", json.load(open(os.path.join(path, "assets.extra", "tfs2s_export.json"),
                                                        encoding="utf-8"))["host_tokenization"]["source"]["vocab"])
    cases = {"export_dir": path, "normalization": _normalization_cases(vocab, _multi30k_lines(1000) + ODD),
             "sentences": sentences, "encoder_token_ids": ids.tolist(), "greedy": greedy, "beam": beam,
             "n_best": translator.config.decoding.n_best, "bad_inputs": ODD}
    cases_path = str(tmp_path / "js_client_cases.json")
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    proc = subprocess.run([node, "--test", "test/client.test.mjs"], cwd=JS_CLIENT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TFS2S_JS_CLIENT_CASES=cases_path))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "# pass 5" in proc.stdout and "# fail 0" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.runtimes  # its own tiny copy-attention export and a Node run (minutes on busy cores)
def test_js_client_shows_copied_words_as_python(tmp_path):
    """A copy-attention export (metadata ``copy``): the client turns copied ids into the source words they copy
    (the encoder reads the source reversed here), so its text and n-best equal ``Translator.translate_batch``'s."""
    node = _node()
    from test_copy_onnx import SOURCES, export_copy_model

    path, translator = export_copy_model(tmp_path, **{"data.reverse_source": True})
    vocab = translator.target_tokenizer.vocab_size
    expected = {}
    for strategy in ("greedy", "beam"):
        out = translator.translate_batch(SOURCES, strategy)
        assert (out["tokens"] >= vocab).any(), f"{strategy}: no output copies, nothing to compare"
        expected[strategy] = [[str(t) for t in texts] for texts in out["text"]]
    script = f"""
        import fs from 'node:fs';
        import path from 'node:path';
        import ort from 'onnxruntime-node';
        import {{ loadTranslator }} from './src/index.mjs';
        const readFile = (p) => fs.promises.readFile(path.join({json.dumps(path)}, p));
        const translator = await loadTranslator({{ ort, readFile }});
        const out = {{ copies: translator.copies }};
        for (const strategy of ['greedy', 'beam']) {{
          out[strategy] = (await translator.translate({json.dumps(SOURCES)}, {{ strategy }}))
            .map((r) => r.nbest.map((c) => c.text));
        }}
        console.log(JSON.stringify(out));
    """
    proc = subprocess.run([node, "--input-type=module", "-e", script], cwd=JS_CLIENT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["copies"] is True
    assert got["greedy"] == expected["greedy"] and got["beam"] == expected["beam"]
    assert any(name in " ".join(sum(expected["beam"], [])) for name in ("anna", "bob", "qqxzvb", "brkzmt"))
