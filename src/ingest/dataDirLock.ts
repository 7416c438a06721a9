/**
 * One writer per data directory: the ledger is a hash chain, and two processes
 * appending to it would fork it. A lock file holds the owner's pid; a lock whose
 * process is gone (a crash, a power cut) is taken over.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockError } from '../errors.js';

export const LOCK_FILE = 'dockside.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DataDirLock {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  static acquire(dataDir: string, what: string): DataDirLock {
    const path = join(dataDir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(path, `${process.pid}\n${what}\n`, { flag: 'wx', mode: 0o644 });
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const [pidText, owner] = readFileSync(path, 'utf8').split('\n');
        const pid = Number(pidText);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
          throw new DockError('CONFIG_INVALID', `${dataDir} is in use by another dockside (${owner ?? 'unknown'}, pid ${pid}); stop it first, or point this command at another --data-dir`, { dataDir, pid });
        }
        rmSync(path, { force: true }); // stale: its process is gone
      }
    }
    throw new DockError('CONFIG_INVALID', `cannot take the lock ${path}`, { path });
  }

  release(): void {
    rmSync(this.path, { force: true });
  }
}
