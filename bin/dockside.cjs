#!/usr/bin/env node
// Entry point for `npx dockside`: runs the compiled CLI (npm run build makes dist/).
//
// libuv's thread pool (file reads, writes and fsyncs) defaults to 4 threads; eight bays
// each holding one for an fdatasync starve it: 16 took 8-camera ingest from 56 to 77
// MB/s here. The size must be set before the pool first starts, and an ES module entry
// is itself read through the pool, so this entry is CommonJS (loaded synchronously).
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
