/**
 * One writer per data directory: the ledger is a hash chain, and two writers
 * appending to it would fork it. A lock file holds the owner's pid; a lock whose
 * process is gone (a crash, a power cut) is taken over.
 *
 * Taking over a stale lock is itself serialised by a second exclusive file, so two
 * processes that find the same stale lock cannot both win (one would otherwise delete
 * the other's fresh lock). Within one process, the paths held are remembered: a
 * second acquire of the same directory is refused, not mistaken for a stale lock that
 * happens to carry our pid.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DockError } from '../errors.js';

export const LOCK_FILE = 'dockside.lock';

// Process-wide by nature: it mirrors the lock files this process holds.
const heldByThisProcess = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function owner(path: string): { pid: number; what: string } | undefined {
  try {
    const [pidText, what] = readFileSync(path, 'utf8').split('\n');
    return { pid: Number(pidText), what: what ?? 'unknown' };
  } catch {
    return undefined;
  }
}

/** Who holds a data directory now (a live process), if anyone: for a tool deciding whether to wait for a daemon. */
export function lockHolder(dataDir: string): { pid: number; what: string } | undefined {
  const o = owner(join(resolve(dataDir), LOCK_FILE));
  return o && Number.isInteger(o.pid) && o.pid > 0 && alive(o.pid) ? o : undefined;
}

function inUse(dataDir: string, o: { pid: number; what: string }): DockError {
  return new DockError('CONFIG_INVALID', `${dataDir} is in use by another dockside (${o.what}, pid ${o.pid}); stop it first, or point this command at another --data-dir`, { dataDir, pid: o.pid, owner: o.what });
}

export class DataDirLock {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  static acquire(dataDir: string, what: string): DataDirLock {
    const path = resolve(join(dataDir, LOCK_FILE));
    if (heldByThisProcess.has(path)) throw inUse(dataDir, { pid: process.pid, what: 'this process' });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        writeFileSync(path, `${process.pid}\n${what}\n`, { flag: 'wx', mode: 0o644 });
        heldByThisProcess.add(path);
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const o = owner(path);
      if (o && Number.isInteger(o.pid) && o.pid > 0 && o.pid !== process.pid && alive(o.pid)) throw inUse(dataDir, o);
      // Stale (or unreadable): take it over, one taker at a time.
      const takeover = `${path}.takeover`;
      try {
        writeFileSync(takeover, `${process.pid}\n`, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const t = owner(takeover);
        if (t && alive(t.pid) && t.pid !== process.pid) throw inUse(dataDir, { pid: t.pid, what: 'taking over a stale lock' });
        rmSync(takeover, { force: true }); // a taker that died mid-way
        continue;
      }
      try {
        const again = owner(path);
        if (again && again.pid !== o?.pid && alive(again.pid)) throw inUse(dataDir, again); // someone won before us
        rmSync(path, { force: true });
      } finally {
        rmSync(takeover, { force: true });
      }
    }
    throw new DockError('CONFIG_INVALID', `cannot take the lock ${path}: it keeps changing hands`, { path });
  }

  release(): void {
    heldByThisProcess.delete(this.path);
    rmSync(this.path, { force: true });
  }
}
