/**
 * Opening a dock data directory for writing: the lock (one writer, because the
 * ledger is a hash chain), the state store, the dock key and the ledger, with the
 * ledger's lines indexed under their clips in the store.
 *
 *   DATA_DIR/dockside.lock  state.db  dock.key.pem  dock.pub.pem  ledger.jsonl
 *            spool/  quarantine/  vault/ (the default sink)  sim/ (with --sim)
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadOrCreateDockKey, type DockKey } from '../custody/dockKey.js';
import { Ledger, readTail, type LedgerEntry } from '../custody/Ledger.js';
import { Store } from '../queue/Store.js';
import { DataDirLock } from './dataDirLock.js';

export interface DataDir {
  path: string;
  store: Store;
  ledger: Ledger;
  dockKey: DockKey;
  close(): Promise<void>;
}

/**
 * A crash between a ledger append and its index row leaves lines unindexed (the
 * ledger is the record; the index only saves rescanning it): index them again.
 * Reads back from the end of the ledger only as far as the index already reaches.
 */
function reindexTail(store: Store, ledgerPath: string): void {
  if (!existsSync(ledgerPath)) return;
  const indexed = store.maxEventSeq();
  const { lines } = readTail(ledgerPath, Number.MAX_SAFE_INTEGER, (line) => (JSON.parse(line) as LedgerEntry).seq <= indexed);
  for (const line of lines) {
    const e = JSON.parse(line) as LedgerEntry;
    if (e.serial && e.clipId) store.addEvent(e.serial, e.clipId, e.seq, line);
  }
}

export function openDataDir(path: string, owner: string): DataDir {
  const dir = resolve(path);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const lock = DataDirLock.acquire(dir, owner);
  try {
    const store = new Store(join(dir, 'state.db'));
    const dockKey = loadOrCreateDockKey(dir);
    const ledger = Ledger.open(join(dir, 'ledger.jsonl'), dockKey.privateKey);
    ledger.onAppend = (e, line) => {
      if (e.serial && e.clipId) store.addEvent(e.serial, e.clipId, e.seq, line);
    };
    reindexTail(store, ledger.path);
    return {
      path: dir,
      store,
      ledger,
      dockKey,
      async close() {
        await ledger.close();
        await store.close();
        lock.release();
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}
