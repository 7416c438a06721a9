#!/usr/bin/env node
// `npm start` until the ingest daemon lands: starts simulated cameras on pseudo-terminal
// serial ports in one process, and runs the technician commands against them from
// another, exactly as a technician would in two terminals.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

const bin = new URL('../bin/dockside.cjs', import.meta.url).pathname;
const dir = process.env.DOCKSIDE_DEMO_DIR ?? './var/demo';
const cameras = Number(process.env.DOCKSIDE_DEMO_CAMERAS ?? 2);
mkdirSync(dir, { recursive: true });

const sim = spawn(process.execPath, [bin, 'sim', '--cameras', String(cameras), '--link', 'pty', '--dir', `${dir}/sim`, '--ports-dir', `${dir}/ports`], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, DOCKSIDE_LOG_LEVEL: process.env.DOCKSIDE_LOG_LEVEL ?? 'warn' },
});
const serials = [];
const lines = createInterface({ input: sim.stdout });
await new Promise((resolve, reject) => {
  sim.once('exit', (code) => reject(new Error(`simulator exited (${code}) before docking its cameras`)));
  lines.on('line', (line) => {
    serials.push(JSON.parse(line).serial);
    if (serials.length === cameras) resolve();
  });
});

const run = (...args) => {
  process.stdout.write(`\n$ dockside ${args.join(' ')}\n`);
  return spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' }).status;
};
let status = run('devices', '--ports-dir', `${dir}/ports`);
status ||= run('diag', serials[0], '--ports-dir', `${dir}/ports`);
sim.kill('SIGTERM');
await new Promise((r) => sim.once('exit', r));
process.exit(status ?? 1);
