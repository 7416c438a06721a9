// Target 2, link goodput.
//
//   modelled pull   READ of a clip over the simulator's link model at 40 MB/s with
//                   10 ms one-way latency (USB 2 through a hub), with the session
//                   options the daemon uses: ÷ the modelled 40 MB/s
//   modelled echo   LINK_TEST (what `dockside diag` reports) over the same link with
//                   the camera's full window: payload each way ÷ 40 MB/s
//   pty echo        LINK_TEST through a socat pty pair, real serialport bindings on
//                   both ends ÷ the same pty pair echoing the same bytes in the same
//                   chunks with the same bytes in flight and no protocol
//
// Each measurement is repeated and the best run counts (noise only slows a run); the
// pty pair and the raw baseline alternate. The notes give the in-process protocol
// ceiling (unthrottled loopback) and what the window allows over the modelled
// round trip, the framing's own ceiling (data ÷ bytes on the line), and the event
// loop's stalls, so a miss can be told apart: CPU, window, host load, or link model.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { linkTest } from '../src/ingest/cameraProbe.js';
import { PROTOCOL_MAX_PAYLOAD, wireLength } from '../src/protocol/frame.js';
import { Session, type SessionOptions } from '../src/protocol/Session.js';
import { SerialTransport } from '../src/hal/serial/SerialTransport.js';
import { SimFleet, type SimFleetOptions } from '../src/sim/SimFleet.js';
import { row } from './row.js';
import type { BenchResult, Suite } from './types.js';

const MB = 1e6;
const MiB = 1024 * 1024;
const RATE = 40 * MB; // bytes/s each way, the modelled USB 2 link
const LATENCY_MS = 10; // one way
/** The echoes ask for every request the camera takes (its HELLO window caps this). */
const FULL_WINDOW: SessionOptions = { window: 0xffff, maxInFlightBytes: 0xffff * PROTOCOL_MAX_PAYLOAD };

interface Measured {
  bytesPerS: number;
  window: number;
  chunk: number; // payload bytes per request
  cpuCores: number; // process CPU time / wall time while measuring
  stallMs: { p99: number; max: number }; // event loop delay while measuring
}

/** Opens a one-camera fleet, connects a session and hands it to `fn`; always closes. */
async function withFleet<T>(fleetOpts: Partial<SimFleetOptions>, session: SessionOptions, fn: (s: Session, fleet: SimFleet) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'dockside-bench-link-'));
  const fleet = await SimFleet.open({ dir, cameras: 1, clips: 0, seed: 1, record: { mode: 'synthetic' }, ...fleetOpts });
  try {
    const [d] = await fleet.dockAll();
    const s = await Session.connect(d!.transport ?? new SerialTransport(d!.path), session);
    try {
      return await fn(s, fleet);
    } finally {
      await s.close();
    }
  } finally {
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Event loop delay while `fn` runs. The simulated camera shares the loop with the
 * dock, so a stall longer than the camera's transmit buffer (20 ms of line time, see
 * ModeledLink) idles the modelled line: on a loaded machine this, not the protocol,
 * is what a modelled run loses.
 */
async function watchingStalls<T>(fn: () => Promise<Omit<T, 'stallMs'>>): Promise<T> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    const r = await fn();
    return { ...r, stallMs: { p99: h.percentile(99) / 1e6, max: h.max / 1e6 } } as T;
  } finally {
    h.disable();
  }
}

/** Data bytes ÷ line bytes of a full-size answer: the most of the rate goodput can be. */
function framingNote(chunk: number, answerOverhead: number): string {
  return `framing leaves ${((chunk / wireLength(chunk + answerOverhead)) * 100).toFixed(1)}% of the line for data`;
}

function stallNote(m: Measured): string {
  return `event loop delay p99 ${m.stallMs.p99.toFixed(0)} ms, max ${m.stallMs.max.toFixed(0)} ms (a stall past the camera's 20 ms transmit buffer idles the line)`;
}

function cpuSince(t0: NodeJS.CpuUsage, seconds: number): number {
  const c = process.cpuUsage(t0);
  return (c.user + c.system) / 1e6 / seconds;
}

async function echo(fleetOpts: Partial<SimFleetOptions>, bytes: number, seconds: number, session: SessionOptions): Promise<Measured> {
  return withFleet(fleetOpts, session, (s) =>
    watchingStalls<Measured>(async () => {
      const c0 = process.cpuUsage();
      const r = await linkTest(s, { maxBytes: bytes, maxSeconds: seconds });
      if (r.lost > 0 || r.frameErrors > 0) throw new Error(`LINK_TEST lost ${r.lost} echoes and discarded ${r.frameErrors} frames on a perfect link`);
      return { bytesPerS: r.goodputBytesPerS, window: s.window, chunk: s.maxChunk - 8, cpuCores: cpuSince(c0, r.seconds) };
    }),
  );
}

/** Pulls one synthetic clip of `bytes` over the modelled link with the daemon's session options. */
async function pull(bytes: number): Promise<Measured> {
  return withFleet({ link: 'loopback', clips: 1, record: { mode: 'synthetic', syntheticBytes: bytes }, linkRateBytesPerS: RATE, latencyMs: LATENCY_MS }, {}, async (s) => {
    const { clips } = await s.listClips();
    const clip = clips[0]!;
    return watchingStalls<Measured>(async () => {
      let got = 0;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await s.readRange(clip.id, 0, clip.size, (_offset, data) => void (got += data.length));
      const sec = (performance.now() - t0) / 1000;
      if (got !== clip.size) throw new Error(`pulled ${got} of ${clip.size} bytes`);
      return { bytesPerS: got / sec, window: s.window, chunk: s.maxChunk, cpuCores: cpuSince(c0, sec) };
    });
  });
}

/** The same pty pair as the simulator's (socat, raw), echoing with no protocol: bytes/s each way. */
async function rawPtyEcho(bytes: number, seconds: number, chunkBytes: number, window: number): Promise<number> {
  const base = join(tmpdir(), `dockside-bench-pty-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const [A, B] = [`${base}-a`, `${base}-b`];
  const socat = spawn('socat', [`pty,raw,echo=0,link=${A}`, `pty,raw,echo=0,link=${B}`], { stdio: 'ignore' });
  const exited = new Promise((r) => socat.once('exit', r));
  try {
    for (let i = 0; !(existsSync(A) && existsSync(B)); i++) {
      if (i > 500) throw new Error('socat made no pty pair within 5 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const a = new SerialPort({ path: A, baudRate: 115200, autoOpen: false });
    const b = new SerialPort({ path: B, baudRate: 115200, autoOpen: false });
    await Promise.all([a, b].map((p) => new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())))));
    try {
      // b plays the camera: it sends back what it gets; a counts what returns.
      b.on('data', (d: Buffer) => b.write(d));
      let got = 0;
      let wake: (() => void) | undefined;
      a.on('data', (d: Buffer) => {
        got += d.length;
        wake?.();
      });
      const chunk = Buffer.alloc(chunkBytes);
      for (let i = 0; i < chunkBytes; i++) chunk[i] = (i * 131 + 7) & 0xff;
      const t0 = performance.now();
      let sent = 0;
      while (sent < bytes && performance.now() - t0 < seconds * 1000) {
        if (sent - got < window * chunkBytes) {
          a.write(chunk);
          sent += chunkBytes;
        } else await new Promise<void>((r) => (wake = r));
      }
      while (got < sent) await new Promise<void>((r) => (wake = r));
      return got / ((performance.now() - t0) / 1000);
    } finally {
      await Promise.all([a, b].map((p) => new Promise((r) => p.close(r))));
    }
  } finally {
    socat.kill();
    await exited;
  }
}

async function best<T extends { bytesPerS: number }>(n: number, f: () => Promise<T>): Promise<T> {
  let top: T | undefined;
  for (let i = 0; i < n; i++) {
    const r = await f();
    if (!top || r.bytesPerS > top.bytesPerS) top = r;
  }
  return top!;
}

/**
 * What a window of `window` × `chunk` bytes can carry over the modelled round trip
 * (two latencies plus the time the payload takes on the line, once or, echoed,
 * twice), before any processing time: above the rate means headroom, below it a cap.
 */
function windowBound(window: number, chunkBytes: number, echoed: boolean): number {
  const serialMs = ((echoed ? 2 : 1) * chunkBytes * 1000) / RATE;
  return (window * chunkBytes * 1000) / (2 * LATENCY_MS + serialMs);
}

function boundNote(bytesPerS: number): string {
  const b = bytesPerS / MB;
  return b < RATE / MB ? `the window caps goodput at ${b.toFixed(1)} MB/s` : `the window alone would carry ${b.toFixed(1)} MB/s, ${((bytesPerS / RATE - 1) * 100).toFixed(0)}% over the rate, before any processing time`;
}

export const suite: Suite = async ({ quick, log }) => {
  const seconds = quick ? 1 : 3;
  const runs = quick ? 2 : 3;
  const rows: BenchResult[] = [];

  const ceiling = await echo({ link: 'loopback' }, 512 * MiB, seconds, FULL_WINDOW);
  log(`loopback echo (unthrottled, in-process ceiling): ${(ceiling.bytesPerS / MB).toFixed(1)} MB/s each way, ${ceiling.cpuCores.toFixed(2)} cores`);
  const ceilingNote = `in-process protocol ceiling (unthrottled loopback echo) ${(ceiling.bytesPerS / MB).toFixed(1)} MB/s each way`;

  const p = await best(runs, () => pull(Math.round(RATE * seconds)));
  log(`modelled pull: ${(p.bytesPerS / MB).toFixed(1)} MB/s, window ${p.window}, ${p.chunk} B chunks, ${p.cpuCores.toFixed(2)} cores`);
  rows.push(
    row({
      name: 'link.modelled.pull',
      value: p.bytesPerS / MB,
      unit: 'MB/s',
      baseline: RATE / MB,
      target: '>= 0.95',
      note:
        `READ of a ${(RATE * seconds / MB).toFixed(0)} MB clip, dock session defaults, over the link model at 40 MB/s, 10 ms one way; ratio = goodput/modelled rate; best of ${runs}; ` +
        `negotiated window ${p.window} × ${(p.chunk / 1024).toFixed(0)} KiB = ${((p.window * p.chunk) / MB).toFixed(2)} MB in flight vs ${((RATE * 2 * LATENCY_MS) / 1000 / MB).toFixed(2)} MB bandwidth-delay product: ${boundNote(windowBound(p.window, p.chunk, false))}; ${framingNote(p.chunk, 12)}; ${p.cpuCores.toFixed(2)} cores busy; ${stallNote(p)}; ${ceilingNote}`,
    }),
  );

  const e = await best(runs, () => echo({ link: 'loopback', linkRateBytesPerS: RATE, latencyMs: LATENCY_MS }, Math.round(RATE * seconds), seconds, FULL_WINDOW));
  log(`modelled echo: ${(e.bytesPerS / MB).toFixed(1)} MB/s each way, window ${e.window}, ${e.cpuCores.toFixed(2)} cores`);
  rows.push(
    row({
      name: 'link.modelled.echo',
      value: e.bytesPerS / MB,
      unit: 'MB/s each way',
      baseline: RATE / MB,
      target: '>= 0.95',
      note:
        `LINK_TEST with the camera's full window (${e.window} × ${(e.chunk / 1024).toFixed(0)} KiB) over the same link model; ratio = goodput/modelled rate; best of ${runs}; ` +
        `each echo crosses the link twice: ${boundNote(windowBound(e.window, e.chunk, true))}; ${framingNote(e.chunk, 4)}; ${e.cpuCores.toFixed(2)} cores busy; ${stallNote(e)}`,
    }),
  );

  // pty: protocol and raw alternate, best of each.
  const ptyBytes = (quick ? 48 : 160) * MiB;
  let proto: Measured | undefined;
  let raw = 0;
  for (let i = 0; i < runs; i++) {
    const m = await echo({ link: 'pty' }, ptyBytes, seconds, FULL_WINDOW);
    if (!proto || m.bytesPerS > proto.bytesPerS) proto = m;
    raw = Math.max(raw, await rawPtyEcho(ptyBytes, seconds, m.chunk, m.window));
    log(`pty round ${i + 1}: protocol ${(m.bytesPerS / MB).toFixed(1)} MB/s, raw ${(raw / MB).toFixed(1)} MB/s (best so far)`);
  }
  rows.push(
    row({
      name: 'link.pty.echo',
      value: proto!.bytesPerS / MB,
      unit: 'MB/s each way',
      baseline: raw / MB,
      target: '>= 0.85',
      note: `LINK_TEST through a socat pty pair, serialport bindings both ends, window ${proto!.window} × ${(proto!.chunk / 1024).toFixed(0)} KiB; baseline: the same pty pair and bindings echoing the same bytes in the same chunks, same bytes in flight, no protocol; ratio = protocol/raw; best of ${runs} alternating`,
    }),
  );
  return rows;
};
