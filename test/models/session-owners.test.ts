/**
 * A checkpoint no longer referenced releases its sessions: when the last UnetModel owning a compiled session is
 * garbage-collected, the session leaves the process-wide cache and its ORT state is freed.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { sessionStats, type CompiledSession } from '../../runtime/graph/session.js';
import { sessionOwners } from '../../runtime/models/session-owners.js';
import { freshUnet, loadCase, unetInputs } from '../pipeline/helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(until: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !until(); i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('session owners', () => {
  it('releases a UNet session once every model owning it is collected, not before', async () => {
    const c = loadCase('unet');
    const { x, t, ctx } = unetInputs(c);
    let session: WeakRef<CompiledSession>;
    let hash = '';
    const before = sessionStats().sessions;
    let keep: ReturnType<typeof freshUnet> | undefined;
    await (async () => {
      const a = freshUnet(c);
      const b = freshUnet(c); // a second model of the same file shares the compiled session
      await a.eps(x, t, ctx);
      await b.eps(x, t, ctx);
      const s = await a.session(false);
      expect(await b.session(false)).toBe(s);
      session = new WeakRef(s);
      hash = s.hash;
      keep = b;
    })();
    expect(sessionOwners(hash)).toBe(2);
    expect(sessionStats().sessions).toBe(before + 1);

    await collect(() => sessionOwners(hash) < 2);
    expect(sessionOwners(hash)).toBe(1);
    expect(sessionStats().sessions).toBe(before + 1); // b still uses it
    expect(session!.deref()?.loaded).toBe(true);

    keep = undefined;
    await collect(() => sessionOwners(hash) === 0 && sessionStats().sessions === before);
    expect(keep).toBeUndefined();
    expect(sessionOwners(hash)).toBe(0);
    expect(sessionStats().sessions).toBe(before);
  }, 60_000);
});
