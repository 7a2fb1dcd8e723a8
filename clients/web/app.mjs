// The tfs2s demo page: one export's ONNX ids graphs in onnxruntime-web (wasm), through the JS client.
//
// ?export=URL names the export folder (default /export/, as serve.mjs serves it). Translation and dialogue
// exports (task text_to_text) go through clients/js/src/index.mjs; image exports through caption.mjs.
// window.tfs2s is the page's hook for scripts and tests: {ready, mode, metadata, translate(texts, options)}.

import * as ort from './node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { loadTranslator } from '../js/src/index.mjs';
import { drawPixels, loadCaptioner, pixels } from './caption.mjs';

// One thread: threads need a cross-origin isolated page (COOP/COEP headers), and the models are small.
ort.env.wasm.numThreads = 1;

const METADATA = 'assets.extra/tfs2s_export.json';
const CONFIG = 'assets.extra/config.json';
const DIALOGUE_CORPORA = ['dailydialog', 'topical_chat', 'chatterbot'];
// Python's str.split() whitespace (chat.Conversation collapses a message's whitespace with it).
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const exportUrl = new URL((params.get('export') ?? '/export/').replace(/\/?$/, '/'), location.href);

async function readFile(relativePath) {
  const response = await fetch(new URL(relativePath, exportUrl));
  if (!response.ok) throw new Error(`${new URL(relativePath, exportUrl)}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function readJson(relativePath, fallback) {
  try {
    return JSON.parse(new TextDecoder().decode(await readFile(relativePath)));
  } catch (error) {
    if (fallback !== undefined) return fallback;
    throw error;
  }
}

async function exists(relativePath) {
  return (await fetch(new URL(relativePath, exportUrl), { method: 'HEAD' })).ok;
}

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

/** translation | dialogue | caption, from the export's task and its training config (or ?mode=). */
function modeOf(metadata, config) {
  if (params.get('mode')) return params.get('mode');
  if (metadata.task === 'image_to_sequence' || metadata.image_shape) return 'caption';
  if (metadata.dialogue) return 'dialogue'; // tfs2s_export.json names dialogue models (newer exports)
  const data = config.data ?? {};
  return DIALOGUE_CORPORA.includes(data.corpus) || data.source_lang === 'context' ? 'dialogue' : 'translation';
}

// ---- Output -------------------------------------------------------------------------------------------------

function formatScore(score) {
  return Number.isFinite(score) ? score.toFixed(3) : String(score);
}

function renderNbest(nbest) {
  $('nbest').replaceChildren(...nbest.map(({ text, score }) => {
    const item = document.createElement('li');
    const scoreSpan = document.createElement('span');
    scoreSpan.className = 'score';
    scoreSpan.textContent = formatScore(score);
    item.append(text === '' ? '(empty)' : text, scoreSpan);
    return item;
  }));
}

/** The attention table: a row per output token, a column per source token, shaded by the weight. */
function renderHeatmap(tokens, sourceTokens, alignment) {
  const table = $('heatmap');
  const header = document.createElement('tr');
  header.append(document.createElement('th'), ...sourceTokens.map((t) => cell('th', t)));
  const head = document.createElement('thead');
  head.append(header);
  const body = document.createElement('tbody');
  tokens.forEach((token, i) => {
    const row = document.createElement('tr');
    row.append(cell('th', token));
    sourceTokens.forEach((source, j) => {
      const weight = Math.min(1, Math.max(0, Number(alignment[i]?.[j] ?? 0)));
      const td = cell('td', '');
      td.style.background = `rgba(37, 99, 235, ${weight.toFixed(3)})`;
      td.title = `${token} ← ${source}: ${weight.toFixed(3)}`;
      td.dataset.weight = String(weight);
      row.append(td);
    });
    body.append(row);
  });
  table.replaceChildren(head, body);
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function renderResult(result, context) {
  $('output').hidden = false;
  $('translation').textContent = result.text;
  $('context').hidden = context === undefined;
  $('context-text').textContent = context ?? '';
  renderNbest(result.nbest);
  const best = result.nbest[0];
  // Old exports (no alignment output), captioning and empty outputs: no heatmap.
  const heatmap = Boolean(result.text && best?.alignment?.length && best.tokens?.length && result.sourceTokens);
  $('attention').hidden = !heatmap;
  if (heatmap) renderHeatmap(best.tokens, result.sourceTokens, best.alignment);
}

// ---- Modes --------------------------------------------------------------------------------------------------

/** The conversation kept as tfs2s.apps.chat.Conversation keeps it: the model sees the last context_turns turns. */
class Conversation {
  constructor(data) {
    this.turns = data.context_turns ?? 1;
    this.separator = data.turn_separator ?? 'SEP';
    this.history = [];
  }

  context() {
    return this.history.slice(-this.turns).filter((u) => u).join(` ${this.separator} `);
  }

  async reply(translator, message, options) {
    this.history.push(String(message).split(PY_SPACE).filter((w) => w).join(' '));
    const context = this.context();
    const [result] = await translator.translate([context], options);
    this.history.push(result.text);
    return { result, context };
  }
}

function renderHistory(history) {
  $('history').hidden = history.length === 0;
  $('history').replaceChildren(...history.map((utterance, i) => {
    const item = cell('li', utterance === '' ? '(empty)' : utterance);
    item.className = i % 2 ? 'model' : 'user';
    return item;
  }));
}

async function setUpText(metadata, config, mode) {
  const translator = await loadTranslator({ ort, readFile });
  const conversation = mode === 'dialogue' ? new Conversation(config.data ?? {}) : null;
  $('text-input').hidden = false;
  if (conversation) {
    $('source-label').textContent = 'Your message';
    $('run').textContent = 'Send';
    $('output-title').textContent = 'Reply';
    $('reset').hidden = false;
    $('reset').addEventListener('click', () => {
      conversation.history = [];
      renderHistory([]);
      $('output').hidden = true;
    });
  }
  const run = async (strategy) => {
    if (conversation) {
      const { result, context } = await conversation.reply(translator, $('source').value, { strategy });
      renderHistory(conversation.history);
      $('source').value = '';
      renderResult(result, context);
    } else {
      renderResult((await translator.translate([$('source').value], { strategy }))[0]);
    }
  };
  return { run, translate: (texts, options) => translator.translate(texts, options), conversation };
}

async function setUpCaption(metadata) {
  const captioner = await loadCaptioner({ ort, readFile, metadata });
  let image = null;
  $('image-input').hidden = false;
  $('run').textContent = 'Caption';
  $('output-title').textContent = 'Caption';
  $('image').addEventListener('change', async () => {
    const file = $('image').files[0];
    image = file ? await pixels(file, captioner.shape) : null;
    if (image) drawPixels($('preview'), image, captioner.shape);
  });
  const run = async (strategy) => {
    if (!image) throw new Error('choose a PNG image first');
    renderResult(await captioner.caption(image, { strategy }));
  };
  return {
    run,
    caption: (data, options) => captioner.caption(data, options),
    pixels: (blob) => pixels(blob, captioner.shape),
  };
}

async function main() {
  $('export-url').textContent = exportUrl.href;
  const metadata = await readJson(METADATA);
  const config = await readJson(CONFIG, {});
  const mode = modeOf(metadata, config);
  $('model-info').textContent = `(${mode}, ${metadata.tokenizer ?? '?'} tokenizer)`;
  if (!['translation', 'dialogue', 'caption'].includes(mode)) throw new Error(`this page does not run ${mode} exports`);
  const graphs = mode === 'caption' ? 'caption_image' : 'translate_ids';
  for (const option of $('strategy').options) {
    option.disabled = !(await exists(`onnx/${graphs}_${option.value}.onnx`));
  }
  const usable = [...$('strategy').options].find((o) => !o.disabled);
  if (!usable) throw new Error(`the export has no onnx/${graphs}_greedy.onnx or _beam.onnx`);
  $('strategy').value = usable.value;
  const app = mode === 'caption' ? await setUpCaption(metadata) : await setUpText(metadata, config, mode);
  $('controls').hidden = false;
  $('controls').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('run').disabled = true;
    setStatus('busy', 'Running…');
    const started = performance.now();
    try {
      await app.run($('strategy').value);
      setStatus('ready', `Done in ${Math.round(performance.now() - started)} ms.`);
    } catch (error) {
      setStatus('error', String(error?.message ?? error));
    } finally {
      $('run').disabled = false;
    }
  });
  window.tfs2s = { ready: true, mode, metadata, ...app };
  setStatus('ready', 'Ready.');
}

main().catch((error) => {
  setStatus('error', `Could not load the export: ${error?.message ?? error}`);
  window.tfs2s = { ready: false, error: String(error?.message ?? error) };
});
