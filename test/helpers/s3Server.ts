// A real S3-compatible store for tests: s3rver as a separate child process (the SDK
// talks HTTP to it over a real socket; nothing is mocked in-process).
//
//   test process ──stdin pipe──▶ node --import <watchdog> s3rver.js -d DIR -a 127.0.0.1 -p PORT
//        │                              │
//        └── S3Client / fetch ── HTTP ──┘
//
// The child must not outlive the test process, however that process ends:
//  - stop()/kill()/stopAll() end it on purpose;
//  - a 'exit' hook SIGKILLs whatever is still running when the process exits normally;
//  - a watchdog preloaded into the child exits it when its stdin pipe closes, which
//    happens whenever the parent dies, even by SIGKILL (where no hook runs).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

const S3RVER_BIN = fileURLToPath(new URL('../../node_modules/s3rver/bin/s3rver.js', import.meta.url));
const ADDRESS = '127.0.0.1';
const WATCHDOG = `data:text/javascript,${encodeURIComponent('process.stdin.on("end",()=>process.exit(0)).on("error",()=>process.exit(0)).resume();')}`;

export interface S3ServerOptions {
  dir?: string; // data directory, kept across restart(); default a fresh temporary directory, removed by stopAll()
  buckets?: string[]; // created at every start (--configure-bucket); default none
  port?: number; // default a free port picked before the first start
  startLimitMs?: number; // ms to wait for the server to answer HTTP, default 15000
}

export interface S3Server {
  endpoint: string; // 'http://127.0.0.1:PORT'
  port: number;
  dir: string;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** SIGKILL (a crashed store), then waits for the exit. */
  kill(): Promise<void>;
  /** Stops the server if it runs, then starts it again on the same port and directory. */
  restart(): Promise<void>;
}

// The one piece of module state: every child this module started, and the temporary
// directories it made. It is module-wide on purpose: the exit hook and stopAll() must
// reach every server, whichever test file or helper started it.
const registry = { children: new Set<ChildProcess>(), ownDirs: new Set<string>(), hooked: false };

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function hookExit(): void {
  if (registry.hooked) return;
  registry.hooked = true;
  process.once('exit', () => {
    for (const child of registry.children) if (alive(child)) child.kill('SIGKILL');
    for (const dir of registry.ownDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, ADDRESS, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('freePort: no port from the OS'))));
    });
  });
}

async function answersHttp(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true; // any HTTP answer (s3rver lists buckets on GET /) means it is serving
  } catch {
    return false;
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (!alive(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function endChild(child: ChildProcess, signal: NodeJS.Signals, graceMs = 5000): Promise<void> {
  if (child.pid === undefined || !alive(child)) return;
  const exited = waitExit(child);
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
  clearTimeout(timer);
  if (!gone) {
    child.kill('SIGKILL');
    await exited;
  }
}

async function spawnS3rver(dir: string, port: number, buckets: string[], limitMs: number): Promise<ChildProcess> {
  hookExit();
  const args = ['--import', WATCHDOG, S3RVER_BIN, '-d', dir, '-a', ADDRESS, '-p', String(port), '-s', ...buckets.flatMap((b) => ['--configure-bucket', b])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  registry.children.add(child);
  child.once('exit', () => registry.children.delete(child));
  child.once('error', () => registry.children.delete(child)); // never spawned: no 'exit' will come
  let output = '';
  const keep = (d: Buffer): void => {
    if (output.length < 20_000) output += d.toString('utf8');
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  // Never let the pipes keep the test process alive, nor an EPIPE on stdin crash it.
  child.stdin!.on('error', () => undefined);
  (child.stdin as unknown as { unref?: () => void }).unref?.();

  const endpoint = `http://${ADDRESS}:${port}`;
  const spawnError = new Promise<Error>((r) => child.once('error', r));
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (!alive(child)) throw new Error(`s3rver exited (${String(child.exitCode ?? child.signalCode)}) before it served ${endpoint}; output:\n${output}`);
    if (await answersHttp(endpoint)) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`s3rver did not answer HTTP at ${endpoint} within ${limitMs} ms; output:\n${output}`);
    }
    const failed = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
    if (failed) throw failed;
  }
}

/** Starts s3rver in a child process and resolves once it answers HTTP. */
export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3Server> {
  const buckets = opts.buckets ?? [];
  const limitMs = opts.startLimitMs ?? 15_000;
  let dir = opts.dir;
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'dockside-s3rver-'));
    registry.ownDirs.add(dir);
  }
  const dataDir = dir;

  // A port picked here can be taken by someone else before s3rver binds it: try a few.
  let port = opts.port ?? (await freePort());
  let child: ChildProcess | undefined;
  for (let attempt = 1; child === undefined; attempt++) {
    try {
      child = await spawnS3rver(dataDir, port, buckets, limitMs);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
      port = await freePort();
    }
  }
  let current: ChildProcess = child;

  return {
    endpoint: `http://${ADDRESS}:${port}`,
    port,
    dir: dataDir,
    stop: () => endChild(current, 'SIGTERM'),
    kill: () => endChild(current, 'SIGKILL'),
    async restart() {
      await endChild(current, 'SIGTERM');
      current = await spawnS3rver(dataDir, port, buckets, limitMs);
    },
  };
}

/** Ends every s3rver this module started and removes the directories it made (for afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...registry.children].map((c) => endChild(c, 'SIGTERM')));
  for (const dir of registry.ownDirs) rmSync(dir, { recursive: true, force: true });
  registry.ownDirs.clear();
}

/**
 * An S3Client set up for s3rver: path-style URLs (no bucket.127.0.0.1 host names), dummy
 * static credentials (s3rver's default account is S3RVER/S3RVER), and checksums only where
 * an operation requires them, because s3rver stores an aws-chunked body (with its checksum
 * trailer) as the object itself. `extra` overrides any of these (e.g. maxAttempts: 1).
 */
export function s3Client(endpoint: string, extra: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...extra,
  });
}

/** The plain-HTTP URL of an object (path style, each key segment encoded). */
export function objectUrl(endpoint: string, bucket: string, key: string): string {
  return `${endpoint}/${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * Reads an object back with an anonymous plain GET (s3rver serves requests that carry no
 * signature at all), independent of the SDK under test. Throws on any status but 200.
 */
export async function fetchObject(endpoint: string, bucket: string, key: string): Promise<Buffer> {
  const res = await fetch(objectUrl(endpoint, bucket, key));
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`GET ${bucket}/${key}: HTTP ${res.status}: ${body.toString('utf8').slice(0, 300)}`);
  return body;
}
