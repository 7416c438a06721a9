// Link goodput: LINK_TEST echo with the full window in flight, each way.
//   loopback     in-process pair (the protocol's own ceiling on this machine)
//   pty          socat pty pair, real serialport bindings on both ends
//   pty raw      the same pty pair moving the same bytes with no protocol (baseline)
//   modelled     simulator link model at 40 MB/s, 10 ms latency (a USB 2 hub), ratio to the model
// Usage: npx tsx scripts/bench-link.ts [--quick]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { linkTest } from '../src/ingest/cameraProbe.js';
import { Session } from '../src/protocol/Session.js';
import { SerialTransport } from '../src/hal/serial/SerialTransport.js';
import { SimFleet, type SimFleetOptions } from '../src/sim/SimFleet.js';

const quick = process.argv.includes('--quick');
const bytes = (quick ? 32 : 128) * 1024 * 1024;
const seconds = quick ? 2 : 5;
const MB = 1e6;

async function viaFleet(opts: Partial<SimFleetOptions>, maxPayload?: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-link-'));
  const fleet = await SimFleet.open({ dir, cameras: 1, clips: 0, seed: 1, record: { mode: 'synthetic' }, ...opts });
  const [d] = await fleet.dockAll();
  const t = d!.transport ?? new SerialTransport(d!.path);
  const s = await Session.connect(t, { window: 16, ...(maxPayload ? { maxPayload } : {}) });
  const r = await linkTest(s, { maxBytes: bytes, maxSeconds: seconds });
  await s.close();
  await fleet.close();
  rmSync(dir, { recursive: true, force: true });
  return r.goodputBytesPerS;
}

async function rawPty(): Promise<number> {
  const A = join(tmpdir(), `bench-ptyA-${process.pid}`);
  const B = join(tmpdir(), `bench-ptyB-${process.pid}`);
  const p = spawn('socat', [`pty,raw,echo=0,link=${A}`, `pty,raw,echo=0,link=${B}`]);
  while (!existsSync(A) || !existsSync(B)) await new Promise((r) => setTimeout(r, 10));
  const a = new SerialPort({ path: A, baudRate: 115200 });
  const b = new SerialPort({ path: B, baudRate: 115200 });
  await Promise.all([new Promise((r) => a.on('open', r)), new Promise((r) => b.on('open', r))]);
  // Echo, as LINK_TEST does: b sends back what it gets; count what returns to a.
  b.on('data', (d: Buffer) => b.write(d));
  let got = 0;
  a.on('data', (d: Buffer) => (got += d.length));
  const chunk = Buffer.alloc(65536, 0x41);
  const t0 = performance.now();
  let sent = 0;
  while (sent < bytes && performance.now() - t0 < seconds * 1000) {
    if (sent - got < 16 * chunk.length) {
      a.write(chunk);
      sent += chunk.length;
    } else await new Promise((r) => setImmediate(r));
  }
  while (got < sent) await new Promise((r) => setTimeout(r, 1));
  const rate = got / ((performance.now() - t0) / 1000);
  a.close();
  b.close();
  p.kill();
  return rate;
}

const results: { name: string; value: number; unit: string; baseline?: number; ratio?: number }[] = [];
const loop = await viaFleet({ link: 'loopback' });
results.push({ name: 'link.loopback.goodput', value: loop / MB, unit: 'MB/s each way' });
const pty = await viaFleet({ link: 'pty' });
const raw = await rawPty();
results.push({ name: 'link.pty.goodput', value: pty / MB, unit: 'MB/s each way', baseline: raw / MB, ratio: pty / raw });
const modelled = await viaFleet({ link: 'loopback', linkRateBytesPerS: 40 * MB, latencyMs: 10 });
results.push({ name: 'link.modelled-usb2.goodput', value: modelled / MB, unit: 'MB/s each way', baseline: 40, ratio: modelled / (40 * MB) });
for (const r of results) console.log(`${r.name.padEnd(28)} ${r.value.toFixed(2).padStart(8)} ${r.unit}${r.ratio !== undefined ? `   baseline ${r.baseline!.toFixed(2)}   ratio ${r.ratio.toFixed(3)}` : ''}`);
console.log(JSON.stringify(results));
