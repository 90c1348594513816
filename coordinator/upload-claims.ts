/**
 * One open upload per (worker, subtree) of a step: a retry that races its own
 * first attempt (the worker gave up on a stream the coordinator still reads)
 * must not be read beside it, or both would buffer a whole partial. The newer
 * stream wins, as soon as its header is read and before it reads any chunk:
 * the older one is stopped (its handler ends with a ProtocolError, "superseded")
 * and the newer waits, reading nothing, until the older has let go; chunks the
 * older one summed are skipped by the round (partials are deterministic). At
 * most one stream waits so per subtree: a third concurrent one is refused.
 *
 * Knows nothing of gRPC or of the sums; the round holds one of these.
 */
import { Deferred } from '../shared/async/deferred.js';
import { ProtocolError } from '../shared/errors.js';

/** A held claim: `release` once the stream is done with (delivered or failed). */
export interface UploadClaim {
  release(): void;
}

interface Holder {
  stop: AbortController;
  released: Deferred<void>;
  /** A newer stream is waiting for this one to let go. */
  successor: boolean;
}

export class UploadClaims {
  private readonly holders = new Map<string, Holder>();

  /** Streams currently open (held claims). */
  get size(): number {
    return this.holders.size;
  }

  /**
   * Claims `key` for the stream that `stop` aborts; stops and waits out an
   * older holder first. `recheck` runs after every wait (the older stream
   * may have delivered meanwhile: it throws AlreadyReceivedError then).
   */
  async claim(key: string, what: string, stop: AbortController, recheck: () => void): Promise<UploadClaim> {
    for (;;) {
      const held = this.holders.get(key);
      if (held === undefined) break;
      if (held.successor) throw new ProtocolError(`${what}: two uploads of this range are already open (one waiting for the other); expected at most one retry at a time`);
      held.successor = true;
      held.stop.abort(new ProtocolError(`${what}: superseded by a newer upload of the same range (a retry)`));
      await held.released.promise;
      recheck();
    }
    const mine: Holder = { stop, released: new Deferred<void>(), successor: false };
    this.holders.set(key, mine);
    return {
      release: () => {
        if (this.holders.get(key) === mine) this.holders.delete(key);
        mine.released.resolve();
      },
    };
  }
}
