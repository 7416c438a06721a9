/**
 * How a technician command reaches the daemon: `askDaemon` answers through its control
 * socket, or undefined when no daemon owns the data directory (the command then does
 * the work itself). A daemon that holds the directory but has not opened its socket yet
 * (it is starting) is waited for, briefly, rather than fought over the lock.
 */
import { callDaemon } from '../control/ControlClient.js';
import { DockError } from '../errors.js';
import { lockHolder } from '../ingest/dataDirLock.js';

const STARTING_WAIT_MS = 15_000;

export async function askDaemon<T>(dataDir: string, method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<{ result: T } | undefined> {
  const until = Date.now() + STARTING_WAIT_MS;
  for (;;) {
    const answer = await callDaemon<T>(dataDir, method, params, timeoutMs);
    if (answer) return answer;
    const holder = lockHolder(dataDir);
    if (!holder || holder.what !== 'dockside run') return undefined; // no daemon (a tool's moment with the lock is waited for by openDataDir)
    if (Date.now() > until) {
      throw new DockError('CONFIG_INVALID', `the daemon (pid ${holder.pid}) holds ${dataDir} but does not answer on its control socket; it may still be starting, or be hung: check its log (journalctl -u dockside)`, { dataDir, pid: holder.pid });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
