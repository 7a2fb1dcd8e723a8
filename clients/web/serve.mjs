#!/usr/bin/env node
// Serves the tfs2s browser demo on 127.0.0.1: the page, the JS client, onnxruntime-web's files and one export.
//
//   node clients/web/serve.mjs --export saved_models/multi30k_small/1 [--port 8000]
//
// then open the URL it prints. URLs are the checkout's own paths (/clients/web/, /clients/js/src/,
// /clients/web/node_modules/onnxruntime-web/dist/), so the page's relative imports also work from any static
// server rooted at the checkout; the export folder is served under /export/ and named by the page's ?export=.
// Only those folders are served (nothing else of the checkout), read-only, GET and HEAD.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENTS = path.dirname(HERE);
const ORT_DIST = 'clients/web/node_modules/onnxruntime-web/dist';
const MIME = {
  '.html': 'text/html; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json; charset=utf-8', '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream',
  '.png': 'image/png', '.svg': 'image/svg+xml', '.model': 'application/octet-stream',
};
const USAGE = 'usage: node clients/web/serve.mjs --export EXPORT_DIR [--port PORT] (PORT 0 or none: a free one)';

function parseArgs(argv) {
  const args = { port: 0, export: null };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = inline ?? argv[++i];
    if (flag === '--export') args.export = value;
    else if (flag === '--port') args.port = Number(value);
    else if (flag === '--help' || flag === '-h') { console.log(USAGE); process.exit(0); }
    else fail(`unknown argument ${argv[i]}\n${USAGE}`);
  }
  if (!args.export) fail(`--export is required\n${USAGE}`);
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) fail(`--port must be 0..65535\n${USAGE}`);
  args.export = path.resolve(args.export);
  if (!fs.existsSync(path.join(args.export, 'assets.extra', 'tfs2s_export.json'))) {
    fail(`${args.export} is not a tfs2s export (assets.extra/tfs2s_export.json is missing)`);
  }
  if (!fs.existsSync(path.join(args.export, 'onnx'))) fail(`${args.export} has no onnx/ folder: export with --onnx`);
  return args;
}

function fail(message) {
  console.error(`serve.mjs: ${message}`);
  process.exit(2);
}

/** URL path prefix -> folder it maps to (longest prefix first). */
function mounts(exportDir) {
  return [
    ['/clients/web/node_modules/onnxruntime-web/dist/', path.join(CLIENTS, '..', ORT_DIST)],
    ['/clients/js/src/', path.join(CLIENTS, 'js', 'src')],
    ['/clients/web/', HERE],
    ['/export/', exportDir],
  ];
}

/** The file a URL path names, or null when it is outside every mount (or tries to climb out of one). */
function resolve(urlPath, table) {
  for (const [prefix, folder] of table) {
    if (!urlPath.startsWith(prefix)) continue;
    const rest = urlPath.slice(prefix.length);
    if (prefix === '/clients/web/' && rest.startsWith('node_modules/')) return null; // only onnxruntime-web's dist
    const file = path.resolve(folder, rest || 'index.html');
    return file === folder || file.startsWith(folder + path.sep) ? file : null;
  }
  return null;
}

function handler(table) {
  return (req, res) => {
    const send = (status, body, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'GET or HEAD only\n');
    let urlPath;
    try {
      urlPath = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      return send(400, 'bad URL\n');
    }
    if (urlPath === '/' || urlPath === '/clients/web') {
      res.writeHead(302, { Location: '/clients/web/?export=/export/' });
      return res.end();
    }
    const file = resolve(urlPath, table);
    fs.stat(file ?? '', (error, stat) => {
      if (error || !stat.isFile()) return send(404, `not found: ${urlPath}\n`);
      res.writeHead(200, {
        'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': stat.size, 'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
    });
  };
}

const args = parseArgs(process.argv.slice(2));
if (!fs.existsSync(path.join(CLIENTS, '..', ORT_DIST))) {
  fail('onnxruntime-web is not installed: (cd clients/web && npm ci --ignore-scripts --no-audit --no-fund)');
}
const server = http.createServer(handler(mounts(args.export)));
server.on('error', (error) => fail(error.message));
server.listen(args.port, '127.0.0.1', () => {
  const { port } = server.address();
  // The first line is the URL (tests read it); Ctrl-C stops the server.
  console.log(`http://127.0.0.1:${port}/clients/web/?export=/export/`);
  console.log(`serving ${args.export} as /export/ (Ctrl-C to stop)`);
});
