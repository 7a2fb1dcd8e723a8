// Captioning in the browser: a PNG -> the export's pixel input -> caption_image_{greedy,beam}.onnx -> text.
//
// The graphs take `encoder_image`, float32 [batch, height, width, channels], pixel values / 255 (the export's
// metadata `image_shape`), as tfs2s.export.onnx.runtime.OnnxCaptioner does. The SavedModel's own decoding
// (tfs2s.data.images.decode_images) turns RGB into luma for one channel (alpha dropped) and resizes other sizes
// bilinearly with antialiasing; `pixels` does the same on the canvas's 8-bit RGBA. Differences left: the canvas
// gives 8 bits (a 16-bit PNG loses its low byte) and a premultiplied canvas can round colours of translucent
// pixels, and libpng's gray is 1/255 off on ~0.3 % of pixels (measured); `resize` equals TensorFlow's to 1e-5.

const GRAPHS = { greedy: 'onnx/caption_image_greedy.onnx', beam: 'onnx/caption_image_beam.onnx' };
// Luma weights of libpng's rgb_to_gray as TensorFlow's PNG decoder sets them (ITU-R BT.601).
const LUMA = [0.299, 0.587, 0.114];

/** One axis of TF's antialiased bilinear resize (scale_and_translate, triangle kernel): [out] -> {start, weights}. */
function axisWeights(inSize, outSize) {
  const scale = outSize / inSize;
  const kernelScale = Math.max(1 / scale, 1); // widened when shrinking: the antialiasing
  return Array.from({ length: outSize }, (_, x) => {
    const center = (x + 0.5) / scale;
    const start = Math.max(0, Math.ceil(center - kernelScale - 0.5));
    const end = Math.min(inSize, Math.floor(center + kernelScale - 0.5) + 1);
    const weights = [];
    for (let j = start; j < end; j++) weights.push(Math.max(0, 1 - Math.abs((j + 0.5 - center) / kernelScale)));
    const total = weights.reduce((a, b) => a + b, 0) || 1;
    return { start, weights: weights.map((w) => w / total) };
  });
}

/** [h, w, c] floats -> [height, width, c], separably (rows, then columns), clipped to [0, 1] as tfs2s does. */
export function resize(data, h, w, c, height, width) {
  if (h === height && w === width) return data;
  const cols = axisWeights(w, width);
  const rows = axisWeights(h, height);
  const wide = new Float32Array(h * width * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < width; x++) {
      const { start, weights } = cols[x];
      for (let k = 0; k < c; k++) {
        let v = 0;
        weights.forEach((wt, i) => { v += wt * data[(y * w + start + i) * c + k]; });
        wide[(y * width + x) * c + k] = v;
      }
    }
  }
  const out = new Float32Array(height * width * c);
  for (let y = 0; y < height; y++) {
    const { start, weights } = rows[y];
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < c; k++) {
        let v = 0;
        weights.forEach((wt, i) => { v += wt * wide[((start + i) * width + x) * c + k]; });
        out[(y * width + x) * c + k] = Math.min(1, Math.max(0, v));
      }
    }
  }
  return out;
}

/** An image file (Blob) -> Float32Array [height, width, channels] of the model, plus its preview ImageData. */
export async function pixels(blob, [height, width, channels]) {
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const native = new Float32Array(bitmap.width * bitmap.height * channels);
  for (let p = 0; p < bitmap.width * bitmap.height; p++) {
    if (channels === 1) {
      // libpng keeps 8-bit gray: truncated, it equals TF's for all but ~0.3 % of pixels (those are 1/255 off).
      native[p] = Math.floor(LUMA[0] * rgba[4 * p] + LUMA[1] * rgba[4 * p + 1] + LUMA[2] * rgba[4 * p + 2]) / 255;
    } else {
      for (let k = 0; k < channels; k++) native[p * channels + k] = rgba[4 * p + k] / 255;
    }
  }
  return resize(native, bitmap.height, bitmap.width, channels, height, width);
}

/** Draws model pixels [height, width, channels] (values in [0, 1]) on a canvas. */
export function drawPixels(canvas, data, [height, width, channels]) {
  canvas.width = width;
  canvas.height = height;
  const image = new ImageData(width, height);
  for (let p = 0; p < width * height; p++) {
    for (let k = 0; k < 3; k++) image.data[4 * p + k] = Math.round(255 * data[p * channels + (channels === 1 ? 0 : k)]);
    image.data[4 * p + 3] = 255;
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
}

/** Loads an image export's vocabulary; graphs load on first use. `caption(pixels, {strategy})` -> nbest list. */
export async function loadCaptioner({ ort, readFile, metadata }) {
  const vocab = new TextDecoder().decode(await readFile('assets/target_vocab.txt')).split('\n');
  const special = metadata.special_ids ?? { pad: 0, unk: 1, bos: 2, eos: 3 };
  const specialCount = Object.keys(special).length;
  const char = metadata.tokenizer === 'char';
  const shape = metadata.image_shape;
  const sessions = {};
  const session = async (strategy) => {
    sessions[strategy] ??= await ort.InferenceSession.create(await readFile(GRAPHS[strategy]));
    return sessions[strategy];
  };
  // As OnnxCaptioner.caption: special tokens but <unk> dropped; characters joined, ▁ is a space.
  const detokenize = (ids) => {
    const tokens = ids.filter((i) => i >= specialCount || i === special.unk).map((i) => vocab[i] ?? vocab[special.unk]);
    return char ? tokens.join('').replaceAll('\u2581', ' ') : tokens.join(' ');
  };
  return {
    shape,
    async caption(data, { strategy = 'greedy' } = {}) {
      const feeds = { encoder_image: new ort.Tensor('float32', data, [1, ...shape]) };
      const out = await (await session(strategy)).run(feeds);
      const [, n, steps] = out.tokens.dims.map(Number);
      const tokens = Array.from(out.tokens.data, Number);
      const nbest = [];
      for (let k = 0; k < n; k++) {
        const ids = tokens.slice(k * steps, (k + 1) * steps).slice(0, Number(out.length.data[k]));
        nbest.push({ text: detokenize(ids), score: Number(out.scores.data[k]), ids });
      }
      return { text: nbest[0].text, score: nbest[0].score, nbest };
    },
  };
}
