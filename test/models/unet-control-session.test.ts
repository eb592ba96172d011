/**
 * One UNet session at a time: after the first ControlNet run, the ControlNet-capable session serves plain calls
 * too (zero residuals, bit for bit the plain result) and the plain session is released.
 */
import { describe, expect, it } from 'vitest';
import { sessionStats } from '../../runtime/graph/session.js';
import { estimateUnetRun, skipBytes } from '../../runtime/models/unet/memory.js';
import { skipChannels } from '../../runtime/models/unet/unet.js';
import { bitsEqual, freshUnet, loadCase, unetInputs } from '../pipeline/helpers.js';

describe('UNet with and without ControlNet residuals', () => {
  it('shares one session, and zero residuals equal no ControlNet exactly', async () => {
    const c = loadCase('unet-odd');
    const unet = freshUnet(c);
    const { x, t, ctx } = unetInputs(c);
    const plain = await unet.eps(x, t, ctx);
    const plainSession = await unet.session(false);
    const sessions = sessionStats().sessions;

    // Residual shapes of this odd-sized latent (stride-2 convs round up), filled by hand.
    const [b, , H, W] = x.dims as number[];
    let h = H!;
    let w = W!;
    const outputs = unet.config.inputBlocks.map((blk, i) => {
      if (blk.kind === 'down') (h = Math.ceil(h / 2)), (w = Math.ceil(w / 2));
      const dims = [b!, skipChannels(unet.config, i), h, w];
      return { data: new Float32Array(dims.reduce((p, q) => p * q, 1)), dims };
    });
    const middleDims = [b!, skipChannels(unet.config, outputs.length - 1), h, w];
    const middle = { data: new Float32Array(middleDims.reduce((p, q) => p * q, 1)), dims: middleDims };

    const zero = await unet.eps(x, t, ctx, { control: { outputs, middle } });
    expect(bitsEqual(zero.data as Float32Array, plain.data as Float32Array)).toBe(true);
    // From the first ControlNet run on, one session serves both kinds of call and the plain one is released.
    const controlSession = await unet.session(true);
    expect(controlSession).not.toBe(plainSession);
    expect(await unet.session(false)).toBe(controlSession);
    expect(plainSession.loaded).toBe(false);
    expect(sessionStats().sessions).toBe(sessions);
    const plainAgain = await unet.eps(x, t, ctx);
    expect(bitsEqual(plainAgain.data as Float32Array, plain.data as Float32Array)).toBe(true);
    for (const o of outputs) o.data.fill(0.25);
    middle.data.fill(-0.5);
    const controlled = await unet.eps(x, t, ctx, { control: { outputs, middle } });
    expect(bitsEqual(controlled.data as Float32Array, plain.data as Float32Array)).toBe(false);
    expect(sessionStats().sessions).toBe(sessions);
  });
});

describe('the memory pre-check estimate', () => {
  it('comes from the UNet about to run: its skips at this size and batch, and its weights until loaded', async () => {
    const c = loadCase('unet');
    const unet = freshUnet(c);
    const cold = estimateUnetRun(unet, [1, 4, 32, 32], 2);
    let weights = 0;
    for (const k of unet.weights.file.keys()) if (k.startsWith(unet.weights.prefix)) weights += 4 * unet.weights.file.info(k).shape.reduce((a, b) => a * b, 1);
    expect(cold.weightBytes).toBe(weights);
    expect(cold.activationBytes).toBe(8 * 2 * skipBytes(unet, 32, 32));
    expect(estimateUnetRun(unet, [1, 4, 64, 64], 2).activationBytes).toBe(4 * cold.activationBytes);
    expect(estimateUnetRun(unet, [1, 4, 32, 32], 4).activationBytes).toBe(2 * cold.activationBytes);
    const { x, t, ctx } = unetInputs(c);
    await unet.eps(x, t, ctx);
    expect(unet.sessionLoaded()).toBe(true);
    expect(estimateUnetRun(unet, [1, 4, 32, 32], 2).weightBytes).toBe(0);
  });
});
