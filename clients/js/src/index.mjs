// tfs2s JavaScript client: translate with a tfs2s text export's ONNX ids graphs, tokenizing in JavaScript.
//
// Works in Node (onnxruntime-node) and in the browser (onnxruntime-web): this module imports nothing. The caller
// passes the `ort` module and a `readFile(relativePath) -> Promise<Uint8Array | ArrayBuffer | string>` that reads
// files of the export folder (Node: fs.promises.readFile on path.join(exportDir, p); browser: fetch).
//
//   import ort from 'onnxruntime-node';
//   import { loadTranslator } from '@tfs2s/client';
//   const translator = await loadTranslator({ ort, readFile: (p) => fs.promises.readFile(path.join(dir, p)) });
//   const [best] = await translator.translate(['Ein Mann fährt Fahrrad.'], { strategy: 'greedy' });
//   best.text; best.nbest; // [{ text, score, ids, tokens, alignment }]; best.sourceTokens
//
// The tokenization comes from the export's metadata (assets.extra/tfs2s_export.json, "host_tokenization", written
// by tfs2s.export.tokenization from the steps the in-graph tokenizer runs): RE2 regex steps, translated here to
// JavaScript regular expressions (translatePattern). Only the word tokenizer is described; WordPiece and
// SentencePiece exports are refused with a clear error.
//
// Unknown words: the ids graphs return <unk> ids and, for attention models, the alignment (each output token's
// attention weights over the encoder positions). Where the export's text outputs replace each <unk> by the source
// word it attends to most (metadata "replace_unknown", from decoding.replace_unknown), this client does the same
// from that alignment (as tfs2s.core.decoding.unk.replace_unknown_tokens), so its text equals Python's. Exports
// written before the ids graphs returned the alignment keep "<unk>" in the text (ids and scores are the same).
//
// Copy attention (metadata "copy"): an output id V + s (V: the target vocabulary's size) copies the source word at
// encoder position s; this client shows that word, as tfs2s.core.decoding.unk.copied_tokens does (a copy of a
// position without a word stays "<unk>", and copies are never <unk>-replaced by attention).

const METADATA = 'assets.extra/tfs2s_export.json';
const GRAPHS = { greedy: 'onnx/translate_ids_greedy.onnx', beam: 'onnx/translate_ids_beam.onnx' };
export const FORMAT = 'tfs2s-tokenization';
export const SUPPORTED_VERSION = 1;
// RE2's \s is ASCII whitespace only; JavaScript's \s is Unicode's (and holds \v).
const RE2_SPACE = '\\t\\n\\f\\r ';
// RE2's (?i) folds case the Unicode way: s also matches U+017F (long s), k the Kelvin sign U+212A.
const FOLDS = { s: 'sS\u017F', k: 'kK\u212A' };

export class TokenizationError extends Error {}

function caseless(ch) {
  const lower = ch.toLowerCase();
  if (lower === ch.toUpperCase()) return ch;
  return `[${FOLDS[lower] ?? lower + lower.toUpperCase()}]`;
}

/**
 * Translates an RE2 pattern (the subset tfs2s tokenizers use) into the source of a JavaScript RegExp for the
 * `u` flag: \x{HHHH} -> \u{HHHH}, \pL -> \p{L}, \s -> RE2's ASCII class, (?i:...) -> explicit letter classes.
 * Throws TokenizationError on syntax it does not know, rather than guessing.
 */
export function translatePattern(re2) {
  let out = '';
  let inClass = false;
  const groups = []; // per open group: whether it is a (?i:...) group
  const caseInsensitive = () => groups.includes(true);
  for (let i = 0; i < re2.length; i++) {
    const ch = re2[i];
    if (ch === '\\') {
      const next = re2[i + 1];
      if (next === undefined) throw new TokenizationError(`pattern ends in a backslash: ${re2}`);
      if (next === 'x' && re2[i + 2] === '{') {
        const end = re2.indexOf('}', i);
        out += `\\u{${re2.slice(i + 3, end)}}`;
        i = end;
      } else if (next === 'p' || next === 'P') {
        if (re2[i + 2] === '{') {
          const end = re2.indexOf('}', i);
          out += `\\${next}${re2.slice(i + 2, end + 1)}`;
          i = end;
        } else {
          out += `\\${next}{${re2[i + 2]}}`;
          i += 2;
        }
      } else if (next === 's') {
        out += inClass ? RE2_SPACE : `[${RE2_SPACE}]`;
        i += 1;
      } else if (/[0-9]/.test(next)) {
        throw new TokenizationError(`back-references are not RE2: ${re2}`);
      } else if (/[A-Za-z]/.test(next) && !'bBntfrv'.includes(next)) {
        throw new TokenizationError(`escape \\${next} is not supported: ${re2}`);
      } else {
        out += `\\${next}`; // \b \n ... and escaped punctuation mean the same in both
        i += 1;
      }
    } else if (inClass) {
      if (ch === ']') inClass = false;
      out += ch;
    } else if (ch === '[') {
      if (caseInsensitive()) throw new TokenizationError(`a class inside (?i:...) is not supported: ${re2}`);
      inClass = true;
      out += ch;
      if (re2[i + 1] === '^') { out += '^'; i += 1; }
      if (re2[i + 1] === ']') { out += '\\]'; i += 1; } // RE2 takes a leading ] literally
    } else if (ch === '(') {
      if (re2.startsWith('(?i:', i)) {
        groups.push(true);
        out += '(?:';
        i += 3;
      } else if (re2.startsWith('(?', i) && !re2.startsWith('(?:', i)) {
        throw new TokenizationError(`group flags are not supported: ${re2}`);
      } else {
        groups.push(false);
        out += ch;
      }
    } else if (ch === ')') {
      groups.pop();
      out += ch;
    } else if (caseInsensitive() && /[A-Za-z]/.test(ch)) {
      out += caseless(ch);
    } else {
      out += ch;
    }
  }
  return out;
}

/** Translates an RE2 rewrite (\1 .. \9, \\) into a String.prototype.replace replacement ($1 .. $9, $$). */
export function translateRewrite(rewrite) {
  let out = '';
  for (let i = 0; i < rewrite.length; i++) {
    const ch = rewrite[i];
    if (ch === '\\') {
      const next = rewrite[i + 1];
      if (/[0-9]/.test(next ?? '')) out += `$${next}`;
      else if (next === '\\') out += '\\';
      else throw new TokenizationError(`rewrite escape \\${next} is not RE2: ${rewrite}`);
      i += 1;
    } else {
      out += ch === '$' ? '$$' : ch;
    }
  }
  return out;
}

/** Compiles `[[re2Pattern, re2Rewrite], ...]` into a function that applies them in order, every match. */
export function compileSteps(steps) {
  const compiled = steps.map(([pattern, rewrite]) => {
    try {
      return [new RegExp(translatePattern(pattern), 'gu'), translateRewrite(rewrite)];
    } catch (error) {
      throw new TokenizationError(`step ${JSON.stringify(pattern)}: ${error.message}`);
    }
  });
  return (text) => compiled.reduce((t, [regex, rewrite]) => t.replace(regex, rewrite), text);
}

/** Valid Unicode text: lone surrogates become U+FFFD, as the graph's UTF-8 repair does with invalid bytes. */
export function wellFormed(text) {
  return String(text).replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function decodeText(data) {
  if (typeof data === 'string') return data;
  // fatal: false replaces invalid bytes with U+FFFD; ignoreBOM keeps a (not expected) BOM as a token character.
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
}

/** One side's tokenizer from its description record and its vocabulary file's text. */
export class WordTokenizer {
  constructor(side, vocabText, specialIds) {
    if (!side.supported || side.kind !== 'word') {
      throw new TokenizationError(`${side.kind} tokenization is not supported by the JS client${side.note ? `: ${side.note}` : ''}`);
    }
    this.side = side;
    this.special = specialIds;
    this.tokens = vocabText.split('\n');
    if (this.tokens.length && this.tokens[this.tokens.length - 1] === '') this.tokens.pop(); // the final newline
    this.ids = new Map(this.tokens.map((t, i) => [t, i]).reverse()); // first line wins, as the hash table does
    this.lowercase = side.host.includes('lowercase');
    this.normalizeSteps = compileSteps(side.normalize);
    this.detokenizeSteps = compileSteps(side.detokenize);
    this.specialCount = Object.keys(specialIds).length;
  }

  /** The normalised text (UTF-8 repair, lowercasing, regex steps). */
  normalize(text) {
    let t = wellFormed(text);
    if (this.lowercase) t = t.toLowerCase(); // full, context-aware (final sigma), as tf.strings.lower's ICU
    return this.normalizeSteps(t);
  }

  /** The words the graph looks up (an empty text has none). */
  words(text) {
    const normalized = this.normalize(text);
    return normalized === '' ? [] : normalized.split(this.side.split);
  }

  /** Token ids (no </s>): unknown words and words that spell a special token -> <unk>. */
  tokenize(text) {
    return this.words(text).map((w) => {
      const id = this.ids.get(w);
      return id === undefined || id < this.specialCount ? this.special.unk : id;
    });
  }

  /** The token string of an output id (out-of-range ids -> <unk>). */
  token(id) {
    return this.tokens[Number(id)] ?? this.tokens[this.special.unk];
  }

  /**
   * Output ids -> text: cut at the first </s>, <pad>/<s> dropped, joined, detokenization steps. `replacements`
   * (position in `ids` -> word) replaces the tokens at those positions first (<unk> replacement).
   */
  detokenize(ids, replacements = new Map()) {
    const kept = [];
    for (let t = 0; t < ids.length; t++) {
      const id = Number(ids[t]);
      if (id === this.special.eos) break;
      if (id === this.special.pad || id === this.special.bos) continue;
      kept.push(replacements.get(t) ?? this.token(id));
    }
    return this.join(kept);
  }

  /** Tokens (strings) -> text: joined with spaces, then the detokenization steps. */
  join(tokens) {
    return this.detokenizeSteps(tokens.join(' '));
  }
}

/** Runs an export's ids graphs with host tokenization. Build it with `loadTranslator`. */
export class Translator {
  constructor(ort, description, source, target, readFile, sessionOptions = {}) {
    this.ort = ort;
    this.sessionOptions = sessionOptions;
    this.description = description;
    this.source = source;
    this.target = target;
    this.readFile = readFile;
    this.sessions = {};
    // Whether the export's text outputs replace <unk> by the attended source word (metadata "replace_unknown").
    this.replaceUnknown = Boolean(description.replace_unknown);
    // Whether output ids >= the target vocabulary's size copy source words (metadata "copy").
    this.copies = Boolean(description.copy);
  }

  /** The source words each text's encoder row reads (truncated, before any reversal), as `encode` uses them. */
  sourceWords(texts) {
    const limit = Math.max(0, this.description.max_source_length - 1);
    return texts.map((text) => this.source.words(text).slice(0, limit));
  }

  /** Padded `[B, S]` source ids as the graph wants them (truncate, reverse, </s>, pad; at least one column). */
  encode(texts) {
    const { max_source_length: maxLength, reverse_source: reverse, special_ids: special } = this.description;
    const rows = texts.map((text) => {
      let ids = this.source.tokenize(text).slice(0, Math.max(0, maxLength - 1));
      if (reverse) ids = ids.reverse();
      return [...ids, special.eos];
    });
    const width = Math.max(1, ...rows.map((r) => r.length));
    return rows.map((r) => [...r, ...new Array(width - r.length).fill(special.pad)]);
  }

  async session(strategy) {
    if (!GRAPHS[strategy]) throw new TokenizationError(`strategy must be greedy or beam, got ${strategy}`);
    if (!this.sessions[strategy]) {
      const bytes = await this.readFile(GRAPHS[strategy]);
      const model = typeof bytes === 'string' ? bytes : new Uint8Array(bytes instanceof ArrayBuffer ? bytes : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      this.sessions[strategy] = await this.ort.InferenceSession.create(model, this.sessionOptions);
    }
    return this.sessions[strategy];
  }

  /**
   * Raw graph outputs for padded ids: `{tokens [B,N,L], length [B,N], scores [B,N]}` (and `alignment [B,N,L,S]`
   * for attention models) as ort tensors.
   */
  async translateIds(ids, { strategy = 'greedy' } = {}) {
    const session = await this.session(strategy);
    const flat = Int32Array.from(ids.flat());
    const feeds = { encoder_token_ids: new this.ort.Tensor('int32', flat, [ids.length, ids[0].length]) };
    return session.run(feeds);
  }

  /**
   * Translates `texts`. Returns one `{text, score, nbest, sourceTokens}` per text, best first (greedy: one
   * candidate). Each n-best entry is `{text, score, ids, tokens}`, plus `alignment` (one row of attention weights
   * over `sourceTokens` per output token) when the graph returns it. `sourceTokens` are the source words in the
   * order the encoder read them (reversed when the model reverses its source), then "</s>". A text with no words
   * translates to "" with score 0, as in the SavedModel.
   */
  async translate(texts, { strategy = 'greedy' } = {}) {
    if (!texts.length) return [];
    const ids = this.encode(texts);
    const words = this.sourceWords(texts);
    const out = await this.translateIds(ids, { strategy });
    const [batch, n, steps] = out.tokens.dims.map(Number);
    const tokens = Array.from(out.tokens.data, Number);
    const lengths = Array.from(out.length.data, Number);
    const scores = Array.from(out.scores.data, Number);
    const alignment = out.alignment ? { data: out.alignment.data, dims: out.alignment.dims.map(Number) } : null;
    const { eos, pad } = this.description.special_ids;
    const reverse = this.description.reverse_source;
    return texts.map((_, b) => {
      const read = reverse ? [...words[b]].reverse() : words[b];
      const empty = ids[b].filter((id) => id !== pad).length <= 1; // only </s>
      const nbest = [];
      for (let k = 0; k < n; k++) {
        const row = tokens.slice((b * n + k) * steps, (b * n + k + 1) * steps).slice(0, lengths[b * n + k]);
        const cut = row.indexOf(eos);
        // A source without words translates to "" (as the SavedModel answers): no output tokens either.
        const hyp = empty ? [] : cut < 0 ? row : row.slice(0, cut);
        const weights = alignment ? this.alignmentRows(alignment, b, k, hyp.length, read.length + 1) : null;
        const replacements = weights && this.replaceUnknown ? this.unknownReplacements(hyp, weights, read) : new Map();
        if (this.copies) this.copiedWords(hyp, read).forEach((word, t) => replacements.set(t, word));
        const candidate = { text: this.target.detokenize(hyp, replacements), score: scores[b * n + k], ids: hyp,
          tokens: hyp.map((id, t) => replacements.get(t) ?? this.target.token(id)) };
        if (weights) candidate.alignment = weights;
        nbest.push(candidate);
      }
      return { text: nbest[0].text, score: nbest[0].score, nbest, sourceTokens: [...read, '</s>'] };
    });
  }

  /** Rows `[0, length)` of candidate (b, k) of an `alignment [B, N, L, S]`, each cut to its first `width` columns. */
  alignmentRows({ data, dims }, b, k, length, width) {
    const [, n, steps, positions] = dims;
    const base = (b * n + k) * steps * positions;
    const rows = [];
    for (let t = 0; t < Math.min(length, steps); t++) {
      rows.push(Array.from(data.subarray(base + t * positions, base + t * positions + Math.min(width, positions))));
    }
    return rows;
  }

  /**
   * Position -> source word for each <unk> of `hyp`: the word of the position it attends to most, among the
   * positions of words (never </s> or padding), as tfs2s.core.decoding.unk.replace_unknown_tokens. `read` are the
   * words in the encoder's order. Rows of a source without words keep their <unk>.
   */
  unknownReplacements(hyp, weights, read) {
    const replacements = new Map();
    if (!read.length) return replacements;
    hyp.forEach((id, t) => {
      if (id !== this.description.special_ids.unk || !weights[t]) return;
      let best = 0;
      for (let p = 1; p < read.length; p++) if (weights[t][p] > weights[t][best]) best = p; // first maximum wins
      replacements.set(t, read[best]);
    });
    return replacements;
  }

  /**
   * Position -> source word for each copied id of `hyp` (V + s: the word at encoder position s of `read`, the words
   * in the encoder's order), as tfs2s.core.decoding.unk.copied_tokens. A copy of a position without a word is left
   * out (its token stays "<unk>").
   */
  copiedWords(hyp, read) {
    const copied = new Map();
    const vocab = this.target.tokens.length;
    hyp.forEach((id, t) => {
      const position = Number(id) - vocab;
      if (position >= 0 && position < read.length) copied.set(t, read[position]);
    });
    return copied;
  }

  async release() {
    await Promise.all(Object.values(this.sessions).map((s) => s.release()));
    this.sessions = {};
  }
}

/**
 * Loads an export: its metadata's tokenization description and both vocabularies (graphs load on first use).
 *
 * `sessionOptions` go to `ort.InferenceSession.create` (e.g. `{intraOpNumThreads: 1}`: onnxruntime-node's default
 * of a thread per core lost to other processes on a busy 2-core machine, measured 4.5 vs 15 sentences/s in beam).
 *
 * @param {{ort: object, readFile: (relativePath: string) => Promise<Uint8Array|ArrayBuffer|string>,
 *          sessionOptions?: object}} options
 */
export async function loadTranslator({ ort, readFile, sessionOptions = {} }) {
  const metadata = JSON.parse(decodeText(await readFile(METADATA)));
  const description = metadata.host_tokenization;
  if (!description) {
    throw new TokenizationError(`${METADATA} has no host_tokenization: re-export with a newer tfs2s`);
  }
  if (description.format !== FORMAT || description.version > SUPPORTED_VERSION) {
    throw new TokenizationError(`tokenization ${description.format} v${description.version} is newer than this client (v${SUPPORTED_VERSION})`);
  }
  const side = async (record) => {
    if (!record.supported) return new WordTokenizer(record, '', description.special_ids); // throws with the note
    return new WordTokenizer(record, decodeText(await readFile(`assets/${record.vocab}`)), description.special_ids);
  };
  const options = { ...description, replace_unknown: Boolean(metadata.replace_unknown),
    copy: Boolean(metadata.copy) };
  return new Translator(ort, options, await side(description.source), await side(description.target), readFile,
    sessionOptions);
}
