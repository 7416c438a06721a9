// Crash testing the real daemon: `dockside run` as a child process (its own process
// group), SIGKILLed at chosen points of an ingest, restarted over the same data dir,
// and finally run to idle. The kill points watch the dock's own durable record
// (DATA_DIR/ledger.jsonl as it grows, and files appearing in the quarantine or the
// vault), so each kill lands in the phase it names.
import { createHash } from 'node:crypto';
import { existsSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { CustodyEvent, LedgerEntry } from '../../src/custody/Ledger.js';
import type { CliChildren } from './cliProcess.js';

export type ThenStep = 'state-commit' | 'sidecar-write' | { clipState: string };

export type KillPoint =
  /**
   * The first time this run appends `event` to the ledger; then `afterMs` more, or the
   * steps of `then` in turn, each seen after the one before:
   *   sidecar-write  the clip's sidecar temporary file appears in the vault
   *   state-commit   the state store writes (state.db-wal, in inotify order); as the first
   *                  step, only while the ledger still ends with that event: the kill lands
   *                  between a state commit and the ledger line meant to come next
   *   {clipState}    the state store shows the event's clip in that state (read-only queries)
   */
  | { kind: 'event'; event: CustodyEvent; afterMs?: number; then?: ThenStep[] }
  /** `ms` after this run's first 'docked' event (the fleet exists by then). */
  | { kind: 'delay'; ms: number }
  /** As soon as a clip file lands in quarantine/, or a temporary file appears in the vault. */
  | { kind: 'file'; where: 'quarantine' | 'vault-tmp' };

export function describeKill(p: KillPoint): string {
  if (p.kind === 'event') return `first '${p.event}'${p.afterMs ? ` +${p.afterMs}ms` : ''}${p.then ? `, then at the next ${p.then.map((t) => (typeof t === 'string' ? t : `state ${t.clipState}`)).join(', then ')}` : ''}`;
  if (p.kind === 'delay') return `'docked' +${p.ms}ms`;
  return p.where === 'quarantine' ? 'clip file in quarantine/' : 'temp file in vault/';
}

export interface KillOutcome {
  point: string;
  landed: boolean; // false: the run ended (idle, or an error) before the kill point came
  hung: boolean; // killed by the safety limit, not by the kill point: the run never ended by itself
  code: number | null;
  signal: NodeJS.Signals | null;
  lastEvent: string; // the last ledger line this run wrote before it died
  events: number; // ledger lines this run wrote
  state: string; // what the kill left, for the report
  stderrTail: string;
}

/** A small seeded PRNG (mulberry32), so a failing kill sequence can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reads the ledger lines appended since `offset` (complete lines only). */
class LedgerTail {
  readonly #path: string;
  #offset: number;
  #partial = '';

  constructor(path: string) {
    this.#path = path;
    this.#offset = existsSync(path) ? statSync(path).size : 0;
  }

  read(): LedgerEntry[] {
    if (!existsSync(this.#path)) return [];
    const size = statSync(this.#path).size;
    if (size <= this.#offset) return [];
    const fd = openSync(this.#path, 'r');
    try {
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      const text = this.#partial + buf.subarray(0, n).toString('utf8');
      const lines = text.split('\n');
      this.#partial = lines.pop() ?? '';
      return lines.filter(Boolean).map((l) => JSON.parse(l) as LedgerEntry);
    } finally {
      closeSync(fd);
    }
  }
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) out.push(...filesUnder(p).map((f) => `${name}/${f}`));
    else out.push(name);
  }
  return out;
}

/** Clip states in the state store, spool and vault leftovers: what a kill left behind. */
export function describeState(dataDir: string): string {
  let states: string;
  try {
    const db = new Database(join(dataDir, 'state.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT state, COUNT(*) n FROM clips GROUP BY state ORDER BY state').all() as { state: string; n: number }[];
      states = rows.map((r) => `${r.state}=${r.n}`).join(' ') || 'no clips';
    } finally {
      db.close();
    }
  } catch (err) {
    states = `state.db unreadable (${(err as Error).message})`;
  }
  const spool = filesUnder(join(dataDir, 'spool'));
  const vaultTmp = filesUnder(join(dataDir, 'vault')).filter((f) => f.split('/').pop()!.startsWith('.'));
  return `${states}; spool [${spool.join(', ')}]${vaultTmp.length ? `; vault temp [${vaultTmp.join(', ')}]` : ''}`;
}

function fileAppeared(dataDir: string, where: 'quarantine' | 'vault-tmp'): boolean {
  if (where === 'quarantine') return filesUnder(join(dataDir, 'quarantine')).some((f) => /\.(bin|mp4)$/.test(f));
  return filesUnder(join(dataDir, 'vault')).some((f) => /\/\.[^/]*\.tmp$/.test(f));
}

function walStamp(dataDir: string): string {
  const st = statSync(join(dataDir, 'state.db-wal'), { throwIfNoEntry: false, bigint: true });
  return st ? `${st.size}/${st.mtimeNs}` : 'none';
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * Starts `dockside run ARGS` and SIGKILLs its whole process group at `point`
 * (or lets it end, if the point never comes); resolves once it is dead.
 */
export async function runAndKill(kids: CliChildren, args: string[], dataDir: string, point: KillPoint, limitMs = 20_000): Promise<KillOutcome> {
  const tail = new LedgerTail(join(dataDir, 'ledger.jsonl'));
  const child = kids.spawn(args);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  let killed = false;
  let hung = false;
  let armed: NodeJS.Timeout | undefined;
  let last = '(none)';
  let events = 0;
  const kill = (): void => {
    if (killed) return;
    killed = true;
    killGroup(child.pid);
  };
  const killAfter = (ms: number): void => {
    if (armed || killed) return;
    if (ms <= 0) kill();
    else armed = setTimeout(kill, ms);
  };
  // `then`: the steps after the trigger event (see KillPoint).
  const steps = point.kind === 'event' ? (point.then ?? []) : [];
  let step = -1; // -1: the trigger has not come yet
  let endsWithTrigger = false; // the ledger's last line is the trigger event
  let sidecar = '';
  let clip: { serial: string; clipId: string } | undefined;
  let db: Database.Database | undefined;
  const clipState = (): string | undefined => {
    try {
      db ??= new Database(join(dataDir, 'state.db'), { readonly: true, fileMustExist: true });
      return (db.prepare('SELECT state FROM clips WHERE serial = ? AND clip_id = ?').get(clip?.serial, clip?.clipId) as { state: string } | undefined)?.state;
    } catch {
      return undefined; // busy or not there yet: look again
    }
  };
  let wal: { stamp: string; call: number } | undefined; // a state-commit step armed: WAL stamp, and in which call
  let call = 0;
  const advance = (): void => {
    step++;
    wal = undefined;
    if (step === steps.length) kill();
  };
  const look = (changed?: string | null): void => {
    if (killed) return;
    call++;
    let entries: LedgerEntry[];
    try {
      entries = tail.read();
    } catch {
      return; // read again on the next change
    }
    for (const e of entries) {
      events++;
      last = `${e.event}${e.clipId ? ` ${e.serial}/${e.clipId}` : ''}`;
      endsWithTrigger = point.kind === 'event' && e.event === point.event;
      if (endsWithTrigger && point.kind === 'event' && step === -1) {
        step = 0;
        sidecar = join(dataDir, 'vault', String(e.serial), `.${String(e.clipId)}.json.tmp`);
        clip = { serial: String(e.serial), clipId: String(e.clipId) };
        if (steps.length === 0) killAfter(point.afterMs ?? 0);
      }
      if (point.kind === 'delay' && e.event === 'docked') killAfter(point.ms);
    }
    while (!killed && step >= 0 && step < steps.length) {
      const want = steps[step]!;
      if (typeof want !== 'string') {
        if (clipState() !== want.clipState) break;
        advance();
        continue;
      }
      if (want === 'sidecar-write') {
        if (!existsSync(sidecar)) break;
        advance();
        continue;
      }
      // state-commit
      if (step === 0 && !endsWithTrigger) {
        wal = undefined; // the ledger moved on: wait for the trigger event again
        break;
      }
      if (!wal || (step === 0 && entries.length > 0)) {
        wal = { stamp: walStamp(dataDir), call }; // armed now; a later write counts
        break;
      }
      if ((changed === 'state.db-wal' && wal.call < call) || walStamp(dataDir) !== wal.stamp) {
        advance();
        continue;
      }
      break;
    }
    if (point.kind === 'file' && fileAppeared(dataDir, point.where)) kill();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dataDir, (_type, filename) => look(filename)); // inotify, in order: the ledger grew, the state store wrote, ...
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(() => look(), point.kind === 'file' || steps.length > 0 ? 1 : 5);
  const limit = setTimeout(() => {
    if (!killed) hung = true;
    kill();
  }, limitMs); // a safety net against a hang, never an assertion on time
  const { code, signal } = await exited;
  clearInterval(poll);
  clearTimeout(limit);
  clearTimeout(armed);
  watcher?.close();
  db?.close();
  try {
    look();
  } catch {
    // the final read is for the report only
  }
  return { point: describeKill(point), landed: killed && !hung, hung, code, signal, lastEvent: last, events, state: describeState(dataDir), stderrTail: stderr.slice(-2000) };
}

// ---------------------------------------------------------------- what is checked

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function readLedger(dataDir: string): LedgerEntry[] {
  const p = join(dataDir, 'ledger.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LedgerEntry);
}

export interface CameraOnDisk {
  serial: string;
  dir: string;
  manifests: string[]; // every clip id the camera recorded
  held: string[]; // clip ids whose bytes are still on flash
  marks: { clipId: string; sha256: string; timeMs: number }[];
  planted: { corrupt: string[]; tamper: string[]; gap: string[] };
  log: { seq: number; timeMs: number; message: string }[];
}

/** A simulated camera's flash, read straight from its directory (no Flash.open: that would finish pending frees). */
export function readCameras(dataDir: string): CameraOnDisk[] {
  const root = join(dataDir, 'sim');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => d.startsWith('BC4-') && existsSync(join(root, d, 'camera.json')))
    .sort()
    .map((serial) => {
      const dir = join(root, serial);
      const identity = JSON.parse(readFileSync(join(dir, 'camera.json'), 'utf8')) as { planted: CameraOnDisk['planted'] };
      const ids = (sub: string, ext: RegExp): string[] => (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).filter((f) => ext.test(f)).map((f) => f.replace(ext, '')).sort() : []);
      const log = existsSync(join(dir, 'log.jsonl'))
        ? readFileSync(join(dir, 'log.jsonl'), 'utf8')
            .split('\n')
            .flatMap((l) => {
              try {
                return [JSON.parse(l) as CameraOnDisk['log'][number]];
              } catch {
                return []; // empty or torn line
              }
            })
        : [];
      return {
        serial,
        dir,
        manifests: ids('manifests', /\.json$/),
        held: ids('clips', /\.(bin|mp4)$/),
        marks: ids('released', /\.json$/).map((id) => JSON.parse(readFileSync(join(dir, 'released', `${id}.json`), 'utf8')) as CameraOnDisk['marks'][number]),
        planted: identity.planted,
        log,
      };
    });
}

const RELEASE_LINE = /^RELEASE (\S+) sha256=([0-9a-f]{64}) receipt=/;

export interface ReleaseProblem {
  serial: string;
  clipId: string;
  problem: string;
}

/**
 * What must hold at every instant, even right after a kill: each release the camera
 * obeyed (its RELEASE log line, its durable release mark) came after the dock's
 * ledger recorded 'stored' for that clip with that hash; no clip was freed twice.
 * (A mark whose bytes are not freed yet is not a problem here: the camera finishes the
 * free when its flash is next opened; the final checks see every flash empty.)
 */
export function releaseProblems(dataDir: string): ReleaseProblem[] {
  const stored = new Map<string, LedgerEntry[]>();
  for (const e of readLedger(dataDir)) if (e.event === 'stored') stored.set(`${e.serial}/${e.clipId}`, [...(stored.get(`${e.serial}/${e.clipId}`) ?? []), e]);
  const problems: ReleaseProblem[] = [];
  const storedBefore = (serial: string, clipId: string, sha: string, timeMs: number): boolean => (stored.get(`${serial}/${clipId}`) ?? []).some((e) => e.details['sha256'] === sha && e.timeMs <= timeMs);
  for (const cam of readCameras(dataDir)) {
    const lines = new Map<string, number>();
    for (const rec of cam.log) {
      const m = RELEASE_LINE.exec(rec.message);
      if (!m) continue;
      const [, clipId, sha] = m as unknown as [string, string, string];
      lines.set(clipId, (lines.get(clipId) ?? 0) + 1);
      if (!storedBefore(cam.serial, clipId, sha, rec.timeMs)) problems.push({ serial: cam.serial, clipId, problem: `camera log "RELEASE" at ${rec.timeMs} with no earlier ledger 'stored' for sha256 ${sha.slice(0, 12)}` });
    }
    for (const [clipId, n] of lines) if (n > 1) problems.push({ serial: cam.serial, clipId, problem: `released ${n} times on the camera (RELEASE lines with freed bytes)` });
    for (const mark of cam.marks) {
      if (!storedBefore(cam.serial, mark.clipId, mark.sha256, mark.timeMs)) problems.push({ serial: cam.serial, clipId: mark.clipId, problem: `release mark at ${mark.timeMs} with no earlier ledger 'stored' for its sha256` });
    }
  }
  return problems;
}

export interface VaultReport {
  objects: string[]; // serial/clipId of every stored object
  problems: string[];
  sidecarsWithoutRelease: string[];
}

/** Every vault object hashes to its sidecar's manifest sha256; one object per clip; no temporary files. */
export function checkVault(dataDir: string): VaultReport {
  const root = join(dataDir, 'vault');
  const out: VaultReport = { objects: [], problems: [], sidecarsWithoutRelease: [] };
  if (!existsSync(root)) return out;
  for (const serial of readdirSync(root).sort()) {
    const dir = join(root, serial);
    const names = readdirSync(dir).sort();
    for (const n of names.filter((x) => x.startsWith('.') || !/\.(json|bin|mp4)$/.test(x))) out.problems.push(`${serial}/${n}: a temporary or unexpected file left in the vault`);
    const sidecars = names.filter((x) => !x.startsWith('.') && x.endsWith('.json'));
    const objects = names.filter((x) => !x.startsWith('.') && /\.(bin|mp4)$/.test(x));
    const byId = new Map<string, string[]>();
    for (const o of objects) byId.set(o.replace(/\.(bin|mp4)$/, ''), [...(byId.get(o.replace(/\.(bin|mp4)$/, '')) ?? []), o]);
    for (const [id, files] of byId) {
      if (files.length !== 1) out.problems.push(`${serial}/${id}: ${files.length} objects (${files.join(', ')})`);
      if (!sidecars.includes(`${id}.json`)) out.problems.push(`${serial}/${id}: object without a sidecar`);
    }
    for (const f of sidecars) {
      const id = f.slice(0, -5);
      const sc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { clip: { file: string }; manifest: { sha256: string }; custody: { event: string }[] };
      if (!existsSync(join(dir, sc.clip.file))) {
        out.problems.push(`${serial}/${id}: sidecar without its object ${sc.clip.file}`);
        continue;
      }
      const sha = sha256File(join(dir, sc.clip.file));
      if (sha !== sc.manifest.sha256) out.problems.push(`${serial}/${id}: object hashes to ${sha}, sidecar manifest says ${sc.manifest.sha256}`);
      if (!sc.custody.some((e) => e.event === 'released')) out.sidecarsWithoutRelease.push(`${serial}/${id}`);
      out.objects.push(`${serial}/${id}`);
    }
  }
  return out;
}
