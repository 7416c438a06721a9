/**
 * The checks behind /healthz, as functions the daemon composes:
 *
 *   health: () => healthReport(checkStateStore(store), checkSpool(spool.dir, spool.options.minFreeBytes), checkSink(sink))
 *
 * Each check resolves (never rejects) to { name, ok, detail }, with a detail an
 * operator can act on, within its timeout: a hung disk or a silent store makes the
 * check fail, it never makes /healthz hang. A check may leave work running past its
 * timeout (an fsync cannot be cancelled); what it finds then is dropped.
 */
import { randomBytes } from 'node:crypto';
import { open, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isDockError } from '../errors.js';
import type { Sink } from '../queue/sinks/Sink.js';

export interface HealthCheck {
  name: string; // state-store, spool, sink
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  ok: boolean; // every check ok
  checks: HealthCheck[];
}

export interface CheckOptions {
  timeoutMs?: number; // default CHECK_TIMEOUT_MS
}

export const CHECK_TIMEOUT_MS = 2000;

/** The report of several checks, run at once; ok only when every one is. */
export async function healthReport(...checks: Promise<HealthCheck>[]): Promise<HealthReport> {
  const done = await Promise.all(checks.map((c) => c.catch((err: unknown): HealthCheck => ({ name: 'health', ok: false, detail: `a health check failed unexpectedly: ${message(err)}` }))));
  return { ok: done.every((c) => c.ok), checks: done };
}

/**
 * The state store answers a read and commits a write (one meta row), so a full disk,
 * a read-only file system or an I/O error shows here before the next transition
 * fails. SQLite runs synchronously, so the timeout cannot cut a hung disk short: it
 * would hold the whole daemon, not only this check.
 */
export function checkStateStore(store: { readonly path: string; healthCheck(): void }, opts: CheckOptions = {}): Promise<HealthCheck> {
  return timed('state-store', `the state store ${store.path}`, opts, () => {
    try {
      store.healthCheck();
    } catch (err) {
      throw new Error(`the state store ${store.path} ${sqliteAdvice(err)}`, { cause: err });
    }
    return Promise.resolve(`${store.path}: read and write ok`);
  });
}

/** The spool directory exists, takes a file (created, fsynced, removed) and has `minFreeBytes` free. */
export function checkSpool(dir: string, minFreeBytes: number, opts: CheckOptions = {}): Promise<HealthCheck> {
  return timed('spool', `the spool ${dir}`, opts, async () => {
    const st = await stat(dir).catch((err: unknown) => {
      throw new Error(`the spool ${dir} ${fsAdvice(err)}`, { cause: err });
    });
    if (!st.isDirectory()) throw new Error(`the spool ${dir} is not a directory; fix the data directory`);
    const probe = join(dir, `.dockside-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await open(probe, 'wx', 0o600);
      try {
        await fh.write(PROBE_BYTES);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      throw new Error(`the spool ${dir} ${fsAdvice(err)}`, { cause: err });
    }
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < minFreeBytes) {
      throw new Error(`the spool ${dir} has ${gib(free)} free, under the ${gib(minFreeBytes)} kept in reserve: pulls pause until space returns (free space, or lower spool.minFreeBytes)`);
    }
    return `${dir}: writable, ${gib(free)} free (reserve ${gib(minFreeBytes)})`;
  });
}

/** The evidence store answers its probe (a sink without one is reported ok, unchecked). */
export function checkSink(sink: Pick<Sink, 'name' | 'probe'>, opts: CheckOptions = {}): Promise<HealthCheck> {
  return timed('sink', sink.name, opts, async (signal) => {
    if (!sink.probe) return `${sink.name}: this kind of sink has no probe; not checked`;
    const t0 = Date.now();
    try {
      await sink.probe(signal);
    } catch (err) {
      throw new Error(`${sink.name} ${sinkVerdict(err)}: ${message(err)}`, { cause: err });
    }
    return `${sink.name}: answered its probe in ${Date.now() - t0} ms`;
  });
}

const PROBE_BYTES = Buffer.from('dockside health probe\n');

/** Runs one check under its timeout; `run` returns the detail when ok and throws an actionable Error when not. */
async function timed(name: string, what: string, opts: CheckOptions, run: (signal: AbortSignal) => Promise<string>): Promise<HealthCheck> {
  const timeoutMs = opts.timeoutMs ?? CHECK_TIMEOUT_MS;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<HealthCheck>((resolve) => {
    timer = setTimeout(() => {
      abort.abort();
      resolve({ name, ok: false, detail: `${what} did not answer within ${timeoutMs} ms: check the disk or the network behind it` });
    }, timeoutMs);
  });
  const check = (async (): Promise<HealthCheck> => {
    try {
      return { name, ok: true, detail: await run(abort.signal) };
    } catch (err) {
      return { name, ok: false, detail: message(err) };
    }
  })();
  try {
    return await Promise.race([check, late]);
  } finally {
    clearTimeout(timer);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** What a file-system error means, said so that someone can fix it. */
function fsAdvice(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'does not exist; the daemon creates it at start, so check the data directory (a missing mount?)';
    case 'ENOTDIR':
      return 'is under a path that is not a directory (ENOTDIR); fix the data directory';
    case 'EACCES':
    case 'EPERM':
      return `is not writable by this user (${code}); fix its owner or permissions`;
    case 'EROFS':
      return 'is on a read-only file system (EROFS); remount it read-write';
    case 'ENOSPC':
    case 'EDQUOT':
      return `is full (${code}); free space`;
    case 'EIO':
      return 'gives I/O errors (EIO); check the disk';
    default:
      return `cannot be used (${code ?? 'error'}: ${message(err)})`;
  }
}

/** better-sqlite3 errors carry SQLite's code (SQLITE_FULL, SQLITE_IOERR_WRITE, ...). */
function sqliteAdvice(err: unknown): string {
  const code = String((err as { code?: unknown }).code ?? '');
  const said = message(err);
  if (code === 'SQLITE_FULL') return `cannot be written: the disk is full (${said}); free space in the data directory`;
  if (code.startsWith('SQLITE_READONLY')) return `cannot be written (${code}: ${said}); check the data directory's permissions and that its file system is mounted read-write`;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return `is locked by another process (${code}); another dockside command may hold it`;
  if (code.startsWith('SQLITE_IOERR')) return `gives I/O errors (${code}: ${said}); check the disk`;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return `is damaged (${code}); stop the daemon and restore state.db from a backup (the ledger is the record)`;
  if (/not open/i.test(said)) return 'is closed (the daemon is stopping)';
  return `failed a read and write check (${code || 'error'}: ${said})`;
}

/** A sink's error code, as one word for the health detail. */
function sinkVerdict(err: unknown): string {
  if (isDockError(err, 'SINK_UNAVAILABLE')) return 'unreachable';
  if (isDockError(err, 'SINK_REFUSED')) return 'refused';
  if (isDockError(err, 'SINK_FULL')) return 'full';
  return 'failed its probe';
}
