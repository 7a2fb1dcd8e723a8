// Every case of the bad-input corpus (tests/data/bad_inputs.json) gets one string answer per input from the JS
// client, never an exception or a crash.
//
// Always: corpus items given as bytes ({"base64": ...}) decode with U+FFFD replacement, as the graphs' UTF-8
// repair does.
// With TFS2S_BAD_INPUT_JOBS (a JSON file written by benchmarks/runtimes.py, run by tests/test_bad_inputs.py and
// benchmarks/bad_inputs.py):
//   {"export_dir": "...", "events": "<file>",
//    "jobs": [{"runtime": "node greedy", "case": NAME, "what": "greedy" | "beam", "batch": [item, ...]}, ...]}
// each job's batch is translated in one call; a "start" line before it and a "done" line after it
// ({answered, of, error, answers}) are appended to the events file, so a crash names the case it happened in.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import { loadTranslator } from '../src/index.mjs';

/** A corpus item as the string this client gets: bytes decoded as UTF-8 with replacement. */
export function itemText(item) {
  if (typeof item === 'string') return item;
  return new TextDecoder('utf-8').decode(Buffer.from(item.base64, 'base64'));
}

test('corpus bytes decode with U+FFFD replacement', () => {
  assert.equal(itemText({ base64: Buffer.from([0x45, 0x69, 0x6e, 0x20, 0xff, 0xfe, 0x20, 0xc3]).toString('base64') }),
    'Ein \uFFFD\uFFFD \uFFFD');
  assert.equal(itemText('Ein Hund'), 'Ein Hund');
});

const jobsPath = process.env.TFS2S_BAD_INPUT_JOBS;
if (jobsPath) {
  const spec = JSON.parse(fs.readFileSync(jobsPath, 'utf8'));
  const emit = (event) => {
    const fd = fs.openSync(spec.events, 'a');
    fs.writeSync(fd, `${JSON.stringify(event)}\n`);
    fs.fsyncSync(fd); // a native crash right after must not lose the start line
    fs.closeSync(fd);
  };

  test('every bad-input case gets one string answer per input', async () => {
    const ort = (await import('onnxruntime-node')).default;
    const translator = await loadTranslator({
      ort, readFile: (p) => fs.promises.readFile(path.join(spec.export_dir, p)),
    });
    const failed = [];
    for (const job of spec.jobs) {
      emit({ event: 'start', runtime: job.runtime, case: job.case });
      const done = { event: 'done', runtime: job.runtime, case: job.case, of: job.batch.length, answered: 0,
        error: null, answers: [] };
      try {
        const results = await translator.translate(job.batch.map(itemText), { strategy: job.what });
        done.answers = results.map((r) => r.text);
        const strings = results.filter((r) => typeof r.text === 'string').length;
        done.answered = results.length === job.batch.length ? strings : 0;
        if (done.answered !== job.batch.length) done.error = `${strings} string answers for ${job.batch.length} inputs`;
      } catch (error) {
        done.error = `${error.name}: ${String(error.message).slice(-800)}`;
      }
      emit(done);
      if (done.error) failed.push(`${job.runtime} ${job.case}: ${done.error}`);
    }
    await translator.release();
    assert.deepEqual(failed, []);
  });
}
