// Drives the demo page in headless Chromium (playwright-core, the system's browser) and writes what it showed.
//
//   node clients/web/test/drive.mjs CASES.json OUT.json
//
// CASES: {chromium, url, sentences, strategies, bad_inputs: [{name, batch}], bad_ui?, dialogue?: {url, messages},
// batch?: {sentences, strategies}}. Every part is optional: no sentences, no text-box runs; bad_ui: false skips the
// bad inputs' text-box runs (the hook's run stays). batch: each sentence through the page's window.tfs2s.translate
// hook, one call (batch 1) a sentence, per strategy (benchmarks/clients_parity.py: the whole test set).
// OUT: {info, ui: [{text, translation, nbest, heatmap, status}], beam, bad_inputs: {name: {...}}, dialogue,
// batch: {strategy: {texts, ids, scores, seconds}}, page_errors, console_errors}. tests/test_web_demo.py compares
// it with Python; this script only records.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [casesPath, outPath] = process.argv.slice(2);
const cases = JSON.parse(fs.readFileSync(casesPath, 'utf-8'));
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

async function openPage(context, url, errors) {
  const page = await context.newPage();
  page.on('pageerror', (error) => errors.page.push(String(error?.stack ?? error)));
  page.on('console', (message) => { if (message.type() === 'error') errors.console.push(message.text()); });
  await page.goto(url);
  await page.waitForFunction(() => window.tfs2s !== undefined, null, { timeout: 120000 });
  return page;
}

/** Fills the text box, picks the strategy, submits and reads the output panel once the run has ended. */
async function submit(page, text, strategy) {
  await page.fill('#source', text);
  await page.selectOption('#strategy', strategy);
  await page.evaluate(() => { document.getElementById('status').dataset.state = 'submitted'; });
  await page.click('#run');
  await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('status').dataset.state),
    null, { timeout: 120000 });
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const rows = [...$('heatmap').querySelectorAll('tbody tr')];
    return {
      status: $('status').dataset.state,
      message: $('status').textContent,
      translation: $('translation').textContent,
      context: $('context').hidden ? null : $('context-text').textContent,
      nbest: [...$('nbest').children].map((li) => li.querySelector('.score').textContent),
      history: [...$('history').children].map((li) => li.textContent),
      heatmap: $('attention').hidden ? null : {
        rows: rows.map((r) => r.querySelector('th').textContent),
        columns: [...$('heatmap').querySelectorAll('thead th')].slice(1).map((th) => th.textContent),
        weights: rows.map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.dataset.weight))),
      },
    };
  });
}

/** The corpus through the page's hook, a batch a case; bytes decode with U+FFFD as the string runtimes do. */
async function badInputs(page, corpus) {
  const out = {};
  for (const { name, batch } of corpus) {
    out[name] = await page.evaluate(async (items) => {
      const texts = items.map((item) => (typeof item === 'string' ? item
        : new TextDecoder('utf-8').decode(Uint8Array.from(atob(item.base64), (c) => c.charCodeAt(0)))));
      try {
        const results = await window.tfs2s.translate(texts, { strategy: 'greedy' });
        const answered = results.filter((r) => typeof r.text === 'string').length;
        return { answered, of: items.length, error: results.length === items.length ? null : `${results.length} results`, texts: results.map((r) => r.text) };
      } catch (error) {
        return { answered: 0, of: items.length, error: String(error?.message ?? error), texts: [] };
      }
    }, batch);
  }
  return out;
}

/** `sentences` through the hook one at a time (a page call per chunk): text, best ids, score and seconds of each. */
async function batchTranslate(page, sentences, strategy, chunk = 50) {
  const out = { texts: [], ids: [], scores: [], seconds: [] };
  for (let start = 0; start < sentences.length; start += chunk) {
    const part = await page.evaluate(async ({ texts, strategy }) => {
      const got = { texts: [], ids: [], scores: [], seconds: [] };
      for (const text of texts) {
        const started = performance.now();
        try {
          const [result] = await window.tfs2s.translate([text], { strategy });
          got.texts.push(result.text);
          got.ids.push(Array.from(result.nbest[0]?.ids ?? [], Number));
          got.scores.push(result.score);
        } catch (error) { // recorded in place of the text: the caller counts it as a difference
          got.texts.push(null);
          got.ids.push([]);
          got.scores.push(String(error?.message ?? error));
        }
        got.seconds.push((performance.now() - started) / 1000);
      }
      return got;
    }, { texts: sentences.slice(start, start + chunk), strategy });
    for (const key of Object.keys(out)) out[key].push(...part[key]);
  }
  return out;
}

const errors = { page: [], console: [] };
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfs2s-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: cases.chromium, headless: true, args: FLAGS,
});
const out = {};
try {
  const page = await openPage(context, cases.url, errors);
  out.info = await page.evaluate(() => ({
    ready: window.tfs2s.ready, mode: window.tfs2s.mode, error: window.tfs2s.error ?? null,
    status: document.getElementById('status').textContent,
    strategies: [...document.getElementById('strategy').options].filter((o) => !o.disabled).map((o) => o.value),
  }));
  if (out.info.ready && cases.sentences?.length) {
    out.ui = [];
    for (const text of cases.sentences) out.ui.push({ text, ...(await submit(page, text, 'greedy')) });
    if (out.info.strategies.includes('beam')) {
      out.beam = { text: cases.sentences[0], ...(await submit(page, cases.sentences[0], 'beam')) };
    }
  }
  if (out.info.ready && cases.bad_inputs) {
    // The first input of every bad case through the text box too: the page must answer, not show an error.
    out.bad_ui = {};
    for (const { name, batch } of cases.bad_ui === false ? [] : cases.bad_inputs) {
      if (typeof batch[0] === 'string') out.bad_ui[name] = await submit(page, batch[0], 'greedy');
    }
    out.bad_inputs = await badInputs(page, cases.bad_inputs);
  }
  if (out.info.ready && cases.batch) {
    out.batch = {};
    for (const strategy of cases.batch.strategies) {
      // Warm-up (not timed): the strategy's graph loads into an onnxruntime-web session on its first call.
      await page.evaluate(async ({ text, strategy }) => window.tfs2s.translate([text], { strategy }),
        { text: cases.batch.sentences[0] ?? 'x', strategy });
      const started = performance.now();
      out.batch[strategy] = await batchTranslate(page, cases.batch.sentences, strategy);
      out.batch[strategy].wall_seconds = (performance.now() - started) / 1000;
    }
  }
  if (cases.dialogue) {
    const chat = await openPage(context, cases.dialogue.url, errors);
    out.dialogue = { mode: await chat.evaluate(() => window.tfs2s.mode), turns: [] };
    for (const message of cases.dialogue.messages) out.dialogue.turns.push(await submit(chat, message, 'greedy'));
  }
} finally {
  out.page_errors = errors.page;
  out.console_errors = errors.console;
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1));
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
