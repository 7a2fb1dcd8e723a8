// Decoding-speed worker for benchmarks/node_speed.py: the JS client in onnxruntime-node, one request at a time.
//
//   node bench/speed.mjs EXPORT_DIR INPUTS_JSON
// INPUTS_JSON: {"sentences": [...], "ids": [[...], ...]} (ids: Python's source ids of each sentence, batch 1).
// Reads one JSON request a line on stdin, answers one line on stdout starting with "@@":
//   {"op": "time", "runtime": "node" | "node_raw", "strategy": "greedy" | "beam", "indices": [...]}
//     -> {"seconds": [...], "outputs": [...]}: one call per sentence at batch 1. "node": translate([text]) (JS
//        tokenization, graph, detokenization; output {text, ids}); "node_raw": translateIds on Python's ids
//        (the graph alone; output the best row's ids up to its length).
//   {"op": "encode", "indices": [...]} -> {"ids": [...]}: the JS client's source ids (to compare with Python's).
//   {"op": "quit"}
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

import ort from 'onnxruntime-node';

import { loadTranslator } from '../src/index.mjs';

const [exportDir, inputsPath] = process.argv.slice(2);
const { sentences, ids } = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
const translator = await loadTranslator({ ort, readFile: (p) => fs.promises.readFile(path.join(exportDir, p)) });
const reply = (answer) => process.stdout.write(`@@${JSON.stringify(answer)}\n`);
const ortPackage = new URL('../node_modules/onnxruntime-node/package.json', import.meta.url);
const packageJson = JSON.parse(fs.readFileSync(ortPackage, 'utf8'));

async function once(runtime, strategy, index) {
  if (runtime === 'node') {
    const [result] = await translator.translate([sentences[index]], { strategy });
    return { text: result.text, ids: result.nbest[0].ids };
  }
  const out = await translator.translateIds([ids[index]], { strategy });
  return Array.from(out.tokens.data.slice(0, Number(out.length.data[0])), Number); // best row of [1, N, L]
}

reply({ ready: true, node: process.version, onnxruntime_node: packageJson.version });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  if (request.op === 'quit') break;
  if (request.op === 'encode') {
    reply({ ids: request.indices.map((i) => translator.encode([sentences[i]])[0]) });
    continue;
  }
  const seconds = [];
  const outputs = [];
  for (const index of request.indices) {
    const started = process.hrtime.bigint();
    const output = await once(request.runtime, request.strategy, index);
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    outputs.push(output);
  }
  reply({ seconds, outputs });
}
await translator.release();
