// A tfs2s ONNX export loads and decodes in onnxruntime-node as in Python's onnxruntime.
//
// TFS2S_EXPORT_DIR names a folder of .onnx graphs (an export's onnx/ folder) holding portable_cases.json, written
// by tests/test_onnx_portable.py:
//   {"encoder_token_ids": [[...], ...],                       // int32 source ids [B, S]
//    "expected": {"translate_ids_greedy.onnx": {"tokens": [...], "length": [...], "scores": [...]}, ...}}
// Every graph of standard operators is loaded; the graphs named in "expected" are run on the ids and must give
// Python's token ids and lengths exactly, and its scores within 1e-4. translate_text.onnx is left out: its string
// ops come from onnxruntime-extensions, which has no Node package.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import ort from 'onnxruntime-node';

const NEEDS_EXTENSIONS = new Set(['translate_text.onnx']);
const SCORE_TOLERANCE = 1e-4;
const dir = process.env.TFS2S_EXPORT_DIR;
const skip = dir ? false : 'TFS2S_EXPORT_DIR is not set (tests/test_onnx_portable.py sets it to a fresh export)';

function flatten(nested) {
  return Array.isArray(nested) ? nested.flatMap(flatten) : [nested];
}

function shapeOf(nested) {
  const dims = [];
  for (let level = nested; Array.isArray(level); level = level[0]) dims.push(level.length);
  return dims;
}

function graphs() {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.onnx') && !NEEDS_EXTENSIONS.has(f)).sort();
}

function cases() {
  return JSON.parse(fs.readFileSync(path.join(dir, 'portable_cases.json'), 'utf8'));
}

test('every graph of standard operators loads', { skip }, async () => {
  const files = graphs();
  assert.ok(files.length > 0, `no .onnx graphs in ${dir}`);
  for (const file of files) {
    const session = await ort.InferenceSession.create(path.join(dir, file));
    assert.ok(session.inputNames.length > 0 && session.outputNames.length > 0, file);
    await session.release();
  }
});

test('the ids graphs give Python onnxruntime\'s tokens', { skip }, async (t) => {
  const { encoder_token_ids: ids, expected } = cases();
  const names = Object.keys(expected);
  assert.ok(names.length > 0, 'portable_cases.json expects no graph');
  const feeds = {
    encoder_token_ids: new ort.Tensor('int32', Int32Array.from(flatten(ids)), shapeOf(ids)),
  };
  for (const file of names) {
    await t.test(file, async () => {
      const session = await ort.InferenceSession.create(path.join(dir, file));
      const outputs = await session.run(feeds);
      for (const [name, want] of Object.entries(expected[file])) {
        const got = outputs[name];
        assert.ok(got, `${file} has no output ${name}`);
        assert.deepEqual(got.dims.map(Number), shapeOf(want), `${file} ${name} shape`);
        const values = Array.from(got.data, Number);
        if (name === 'scores') {
          flatten(want).forEach((w, i) => {
            assert.ok(Math.abs(values[i] - w) <= SCORE_TOLERANCE, `${file} scores[${i}]: ${values[i]} vs ${w}`);
          });
        } else {
          assert.deepEqual(values, flatten(want), `${file} ${name}`);
        }
      }
      await session.release();
    });
  }
});
