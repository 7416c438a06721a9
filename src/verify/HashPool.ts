/**
 * A pool of worker threads (piscina) that hash files, so the event loop that serves
 * the bays never hashes bulk data.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { DockError, toDockError } from '../errors.js';
import type { HashResult, HashTask } from './hashWorker.js';

export interface HashPoolOptions {
  threads?: number; // default: the machine's available parallelism
}

/** The compiled worker: beside this file in dist/, or in dist/ when running from src/ (tests). */
function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  const sibling = join(dirname(here), 'hashWorker.js');
  if (!here.endsWith('.ts') && existsSync(sibling)) return sibling;
  const built = fileURLToPath(new URL('../../dist/verify/hashWorker.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new DockError('INTERNAL', `the hash worker is not built (${built}); run \`npm run build\``);
}

export class HashPool {
  readonly #pool: Piscina<HashTask, HashResult>;
  #bytes = 0;

  constructor(options: HashPoolOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new DockError('CONFIG_INVALID', `hash pool threads must be a positive integer, got ${String(threads)}`);
    this.#pool = new Piscina({ filename: workerFile(), minThreads: 1, maxThreads: threads, idleTimeout: 30_000 });
  }

  /** Bytes hashed since start (for the throughput metric). */
  get bytesHashed(): number {
    return this.#bytes;
  }

  async hash(path: string): Promise<HashResult> {
    try {
      const r = await this.#pool.run({ path });
      this.#bytes += r.bytes;
      return r;
    } catch (err) {
      throw toDockError(err, 'INTERNAL', `could not hash ${path}`, { path });
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
