// The JavaScript client (src/index.mjs) tokenizes, translates and detokenizes as tfs2s does in Python.
//
// Always: the RE2 -> JavaScript translation of patterns and rewrites on known cases.
// With TFS2S_JS_CLIENT_CASES (a JSON file written by tests/test_js_client.py):
//   {"export_dir": "...",
//    "normalization": [{"side": SIDE, "texts": [...], "words": [[...]], "joined": [...]}],  // TF's words and
//                                                                    // join_tokens of them, per tokenizer setting
//    "encoder_token_ids": [[...]],    // Translator.encode of "sentences" (TF)
//    "sentences": [...], "greedy": [R], "beam": [R], "n_best": N,  // R = {"text", "nbest": [...], "scores": [...]}
//    "bad_inputs": [...]}                          //   of Translator.translate_batch (<unk> replaced by default)
// the client's words, joined text, source ids, greedy and beam translations (n-best texts, scores) must equal
// Python's, and every bad input must get a string answer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import { WordTokenizer, compileSteps, loadTranslator, translatePattern, translateRewrite } from '../src/index.mjs';

test('RE2 patterns and rewrites become JavaScript ones', () => {
  assert.equal(translatePattern('[\\x{2019}\\x{02BC}]'), '[\\u{2019}\\u{02BC}]');
  assert.equal(translatePattern('(\\pL)[^\\pN\\s\\p{Z}]'), '(\\p{L})[^\\p{N}\\t\\n\\f\\r \\p{Z}]');
  assert.equal(translatePattern('\\s+'), '[\\t\\n\\f\\r ]+');
  assert.equal(translatePattern('((?i:s|ll))\\b'), '((?:[sS\u017F]|[lL][lL]))\\b');
  assert.equal(translateRewrite('\\1 @\\2@ \\3'), '$1 @$2@ $3');
  assert.equal(translateRewrite('$\\1'), '$$$1');
  assert.throws(() => translatePattern('(?s:.)'), /not supported/);
  const steps = compileSteps([['(\\pL) ?[\\x{2019}] ?((?i:s|ll))\\b', "\\1'\\2"], ['\\s+', '_']]);
  assert.equal(steps('I ’ LL go\u00a0now\vx'), "I'LL_go\u00a0now\vx"); // RE2's \s: no NBSP, no \v
});

const casesPath = process.env.TFS2S_JS_CLIENT_CASES;
if (casesPath) {
  const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
  const readFile = (p) => fs.promises.readFile(path.join(cases.export_dir, p));
  const ort = (await import('onnxruntime-node')).default;

  test('normalisation and detokenization equal the TF tokenizer\'s', () => {
    assert.ok(cases.normalization.length > 0);
    for (const { side, texts, words, joined } of cases.normalization) {
      const tokenizer = new WordTokenizer(side, '<pad>\n<unk>\n<s>\n</s>\n', { pad: 0, unk: 1, bos: 2, eos: 3 });
      const label = `rules ${side.rules}, lowercase ${side.lowercase}`;
      texts.forEach((text, i) => {
        assert.deepEqual(tokenizer.words(text), words[i], `${label}: words of ${JSON.stringify(text)}`);
        assert.equal(tokenizer.join(words[i]), joined[i], `${label}: join of ${JSON.stringify(words[i])}`);
      });
    }
  });

  test('source ids and greedy translations equal Python\'s', async () => {
    const translator = await loadTranslator({ ort, readFile });
    assert.deepEqual(translator.encode(cases.sentences), cases.encoder_token_ids);
    assert.ok(translator.replaceUnknown, 'the export replaces <unk>: the client must too');
    const results = await translator.translate(cases.sentences, { strategy: 'greedy' });
    assert.equal(results.length, cases.sentences.length);
    results.forEach((r, i) => {
      assert.equal(r.text, cases.greedy[i].text, `sentence ${i}: ${cases.sentences[i]}`);
      assert.ok(Math.abs(r.score - cases.greedy[i].scores[0]) < 1e-3, `score ${i}: ${r.score}`);
      assert.equal(r.nbest.length, 1);
      const [best] = r.nbest;
      if (cases.sentences[i] === '') assert.deepEqual([best.tokens, best.alignment], [[], []], 'no words, no tokens');
      // One row of attention weights per output token, over the source words and </s>; each row sums to 1.
      assert.equal(best.alignment.length, best.ids.length);
      assert.equal(best.tokens.length, best.ids.length);
      best.alignment.forEach((row) => {
        assert.equal(row.length, r.sourceTokens.length);
        assert.ok(Math.abs(row.reduce((a, x) => a + x, 0) - 1) < 1e-4, `alignment row of ${i} sums to 1`);
      });
    });
    await translator.release();
  });

  test('beam search: n-best texts and scores equal Python\'s', async () => {
    const translator = await loadTranslator({ ort, readFile });
    const results = await translator.translate(cases.sentences, { strategy: 'beam' });
    results.forEach((r, i) => {
      const expected = cases.beam[i];
      assert.equal(r.text, expected.text, `sentence ${i}: ${cases.sentences[i]}`);
      assert.deepEqual(r.nbest.map((c) => c.text), expected.nbest, `n-best of ${i}`);
      assert.equal(r.nbest.length, cases.n_best);
      r.nbest.forEach((c, k) => assert.ok(Math.abs(c.score - expected.scores[k]) < 1e-3, `score ${i}/${k}`));
      assert.ok(r.nbest.every((c) => c.alignment.length === c.ids.length));
    });
    await translator.release();
  });

  test('bad inputs get an answer, never a crash', async () => {
    const translator = await loadTranslator({ ort, readFile });
    for (const text of cases.bad_inputs) {
      const [result] = await translator.translate([text], { strategy: 'greedy' });
      assert.equal(typeof result.text, 'string', JSON.stringify(text).slice(0, 40));
    }
    const all = await translator.translate(cases.bad_inputs, { strategy: 'greedy' });
    assert.equal(all.length, cases.bad_inputs.length);
    assert.deepEqual(await translator.translate([]), []);
    await translator.release();
  });
}
