/**
 * Sessions follow the models that own them. Compiled sessions are shared per process by graph hash, so a
 * loaded model cannot simply release "its" session when it goes away: another model opened from the same file
 * may use it. Owners are counted per hash; when the last owner of a hash is garbage-collected (its checkpoint
 * is no longer referenced by the executor's cache or any handle), the session is released, ORT state, F32
 * defaults and all, and its disk-cache entry becomes evictable.
 */
import { releaseSession, type CompiledSession } from '../graph/session.js';

const owners = new Map<string, number>();
const registry = new FinalizationRegistry<string>((hash) => disown(hash));

function disown(hash: string): void {
  const n = (owners.get(hash) ?? 1) - 1;
  if (n > 0) return void owners.set(hash, n);
  owners.delete(hash);
  void releaseSession(hash).catch(() => {});
}

/** Records that `owner` uses `session`; once every owner of its hash is collected, the session is released. */
export function ownSession(owner: object, session: CompiledSession): void {
  owners.set(session.hash, (owners.get(session.hash) ?? 0) + 1);
  registry.register(owner, session.hash);
}

/** How many live owners a session hash has (for tests and stats). */
export function sessionOwners(hash: string): number {
  return owners.get(hash) ?? 0;
}
