import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, startS3Server, stopAll } from '../../test/helpers/s3Server.js';
import { rejection } from '../../test/helpers/rejection.js';
import { DockError } from '../errors.js';
import { DirSink } from '../queue/sinks/DirSink.js';
import { S3Sink } from '../queue/sinks/S3Sink.js';
import { Store } from '../queue/Store.js';
import type { HashPool } from '../verify/HashPool.js';
import { checkSink, checkSpool, checkStateStore, healthReport, type HealthCheck } from './health.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dockside-health-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});
afterAll(async () => {
  await stopAll();
});

const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
// probe() never hashes: the pool is not reached
const noHashes = {} as HashPool;

describe('checkSpool', () => {
  it('is ok for a writable directory with room, and leaves no probe file', async () => {
    const c = await checkSpool(tmp, 1);
    expect(c).toMatchObject({ name: 'spool', ok: true });
    expect(c.detail).toMatch(new RegExp(`^${tmp}: writable, \\d+\\.\\d\\d GiB free \\(reserve 0\\.00 GiB\\)$`));
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('fails on a directory that does not exist', async () => {
    const c = await checkSpool(join(tmp, 'spool'), 0);
    expect(c.ok).toBe(false);
    expect(c.detail).toBe(`the spool ${join(tmp, 'spool')} does not exist; the daemon creates it at start, so check the data directory (a missing mount?)`);
  });

  it('fails on a path under a regular file (ENOTDIR), and on a file where the directory should be', async () => {
    writeFileSync(join(tmp, 'file'), 'x');
    const under = await checkSpool(join(tmp, 'file', 'spool'), 0);
    expect(under.ok).toBe(false);
    expect(under.detail).toContain('ENOTDIR');
    const file = await checkSpool(join(tmp, 'file'), 0);
    expect(file.ok).toBe(false);
    expect(file.detail).toBe(`the spool ${join(tmp, 'file')} is not a directory; fix the data directory`);
  });

  it('fails when free space is under the reserve, saying how much there is', async () => {
    const c = await checkSpool(tmp, Number.MAX_SAFE_INTEGER);
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/has \d+\.\d\d GiB free, under the \d+\.\d\d GiB kept in reserve/);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('checkStateStore', () => {
  it('reads and commits a meta row without touching clips or cameras', async () => {
    const store = new Store(join(tmp, 'state.db'));
    try {
      store.addListed({ serial: 'CAM1', clipId: 'c1', seq: 1, size: 10, trigger: 0, startMs: 0 });
      const before = { clips: store.clips(), cameras: store.cameras() };
      const c = await checkStateStore(store);
      expect(c).toEqual({ name: 'state-store', ok: true, detail: `${join(tmp, 'state.db')}: read and write ok` });
      expect(Number(store.getMeta('health_checked_ms'))).toBeGreaterThan(Date.now() - 60_000);
      expect({ clips: store.clips(), cameras: store.cameras() }).toEqual(before);
    } finally {
      await store.close();
    }
    // the write was committed, not only seen by this connection
    const again = new Store(join(tmp, 'state.db'));
    try {
      expect(again.getMeta('health_checked_ms')).toBeDefined();
    } finally {
      await again.close();
    }
  });

  it('fails on a closed store', async () => {
    const store = new Store(join(tmp, 'state.db'));
    await store.close();
    const c = await checkStateStore(store);
    expect(c.ok).toBe(false);
    expect(c.detail).toBe(`the state store ${join(tmp, 'state.db')} is closed (the daemon is stopping)`);
  });

  it.each([
    ['SQLITE_FULL', 'database or disk is full', 'free space in the data directory'],
    ['SQLITE_READONLY', 'attempt to write a readonly database', 'mounted read-write'],
    ['SQLITE_IOERR_WRITE', 'disk I/O error', 'check the disk'],
    ['SQLITE_CORRUPT', 'database disk image is malformed', 'restore state.db from a backup'],
  ])('says what to do about %s', async (code, said, advice) => {
    const store = {
      path: '/data/state.db',
      healthCheck(): void {
        throw Object.assign(new Error(said), { code });
      },
    };
    const c = await checkStateStore(store);
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('/data/state.db');
    expect(c.detail).toContain(advice);
  });
});

describe('healthReport', () => {
  const ok: HealthCheck = { name: 'a', ok: true, detail: 'fine' };
  const bad: HealthCheck = { name: 'b', ok: false, detail: 'broken' };

  it('is ok only when every check is', async () => {
    expect(await healthReport(Promise.resolve(ok), Promise.resolve(ok))).toEqual({ ok: true, checks: [ok, ok] });
    expect(await healthReport(Promise.resolve(ok), Promise.resolve(bad))).toEqual({ ok: false, checks: [ok, bad] });
  });

  it('turns a check that rejects into a failed check', async () => {
    const r = await healthReport(Promise.resolve(ok), Promise.reject(new Error('boom')));
    expect(r.ok).toBe(false);
    expect(r.checks[1]).toEqual({ name: 'health', ok: false, detail: 'a health check failed unexpectedly: boom' });
  });
});

describe('checkSink with a DirSink', () => {
  it('is ok for a writable vault (made if missing, as put() would) and leaves no probe file', async () => {
    const root = join(tmp, 'vault');
    const sink = new DirSink(root, noHashes);
    await sink.probe();
    expect(readdirSync(root)).toEqual([]);
    const c = await checkSink(sink);
    expect(c.ok).toBe(true);
    expect(c.detail).toMatch(new RegExp(`^dir:${root}: answered its probe in \\d+ ms$`));
    expect(readdirSync(root)).toEqual([]);
  });

  it('fails as refused for a vault that cannot be a directory', async () => {
    writeFileSync(join(tmp, 'file'), 'x');
    const root = join(tmp, 'file', 'vault');
    const sink = new DirSink(root, noHashes);
    const err = await rejection(sink.probe());
    expect(err).toBeInstanceOf(DockError);
    expect((err as DockError).code).toBe('SINK_REFUSED');
    const c = await checkSink(sink);
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(new RegExp(`^dir:${root} refused: the vault ${root} cannot be written: ENOTDIR`));
  });
});

describe('checkSink timing out', () => {
  it('fails within its timeout when the probe never answers, and aborts it', async () => {
    let signal: AbortSignal | undefined;
    const sink = {
      name: 'dir:/hung',
      probe(s?: AbortSignal): Promise<void> {
        signal = s;
        return new Promise<void>(() => undefined);
      },
    };
    const t0 = Date.now();
    const c = await checkSink(sink, { timeoutMs: 100 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(c).toEqual({ name: 'sink', ok: false, detail: 'dir:/hung did not answer within 100 ms: check the disk or the network behind it' });
    expect(signal?.aborted).toBe(true);
  });

  it('reports a sink without a probe as ok, unchecked', async () => {
    const c = await checkSink({ name: 'x:y' });
    expect(c).toEqual({ name: 'sink', ok: true, detail: 'x:y: this kind of sink has no probe; not checked' });
  });
});

describe('checkSink with an S3Sink', () => {
  const sinks: S3Sink[] = [];
  const s3 = (endpoint: string, bucket = 'evidence'): S3Sink => {
    const s = new S3Sink({ bucket, prefix: 'dock1', endpoint, credentials: S3_CREDENTIALS });
    sinks.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of sinks.splice(0)) await s.close();
  });

  it('fails fast as unreachable against a closed port', async () => {
    const sink = s3(`http://127.0.0.1:${await freePort()}`);
    const t0 = Date.now();
    const err = await rejection(sink.probe());
    expect(Date.now() - t0).toBeLessThan(1500); // one attempt, none of the uploads' retries
    expect((err as DockError).code).toBe('SINK_UNAVAILABLE');
    const c = await checkSink(sink);
    expect(c.ok).toBe(false);
    expect(c.detail).toMatch(/^s3:\/\/evidence\/dock1 unreachable: probing s3:\/\/evidence: .*ECONNREFUSED/);
  });

  it('fails as unreachable, inside the default check timeout, against a store that accepts and says nothing', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const { port } = silent.address() as { port: number };
      const c = await checkSink(s3(`http://127.0.0.1:${port}`));
      expect(c.ok).toBe(false);
      // the probe's own timeout (1.5 s) answers before the check's (2 s): the store's silence is named
      expect(c.detail).toMatch(/^s3:\/\/evidence\/dock1 unreachable: .*TimeoutError/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('is ok against a real store with the bucket, refused without it', async () => {
    const server = await startS3Server({ buckets: ['evidence'] });
    const ok = await checkSink(s3(server.endpoint));
    expect(ok.ok, ok.detail).toBe(true);
    expect(ok.detail).toMatch(/^s3:\/\/evidence\/dock1: answered its probe in \d+ ms$/);
    const missing = await checkSink(s3(server.endpoint, 'no-such-bucket'));
    expect(missing.ok).toBe(false);
    expect(missing.detail).toMatch(/^s3:\/\/no-such-bucket\/dock1 refused: .*create the bucket or fix the sink/);
  });
});
