#!/usr/bin/env node
// Entry point for `npx dockside`: runs the compiled CLI (npm run build makes dist/).
//
// libuv's thread pool (file reads, writes and fsyncs) defaults to 4 threads; eight bays
// each holding one for an fdatasync starve it: 16 took 8-camera ingest from 56 to 77
// MB/s here. The size must be set before the pool first starts, and an ES module entry
// is itself read through the pool, so this entry is CommonJS (loaded synchronously).
//
// No V8 heap flag is set here, though a smaller young generation would lower the
// daemon's peak RSS (bench/memory.ts, 8 x 256 MiB, two runs each: 181-196 MB with
// `node --max-semi-space-size=1`, 195-213 without; a dead ArrayBuffer is freed at the
// next scavenge, and a 16 MiB semi-space lets many pile up before one). It cannot be
// done from inside: --max-semi-space-size is read once, when the heap is made, and
// v8.setFlagsFromString('--semi-space-growth-factor=1') holds only until a Worker's
// heap is configured (the hash pool starts one at once): the new space grew to 32 MB
// once a worker had started. It belongs on node's command line or in NODE_OPTIONS: the
// service unit sets NODE_OPTIONS=--max-semi-space-size=1 (no measurable cost to ingest
// throughput here: 120-138 MB/s with and without), and bench/memory.ts runs it so.
'use strict';
process.env.UV_THREADPOOL_SIZE ??= '16';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const main = join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('dockside: dist/ is missing. Run `npm run build` in the checkout first.\n');
  process.exit(70);
}
import(pathToFileURL(main).href);
