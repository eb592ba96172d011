/** The UNet's training batches: deterministic per (seed, step), and offset noise is one constant per image and channel. */
import { describe, expect, it } from 'vitest';
import { unetBatch, type LatentCache } from '../../runtime/shapes/batches.js';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';

const SIDE = 4;
const PLANE = 4 * SIDE * SIDE;

function cache(): LatentCache {
  const count = 6;
  const latents = Float32Array.from({ length: count * PLANE }, (_, i) => Math.sin(i * 0.37));
  const contextSize = 77 * 8;
  const contexts = Float32Array.from({ length: 3 * contextSize }, (_, i) => Math.cos(i * 0.11));
  return { latents, captions: Int32Array.from([1, 2, 1, 2, 1, 2]), contexts, count, plane: PLANE, contextSize };
}

describe('unetBatch', () => {
  const acp = new ModelSampling().alphasCumprod;

  it('is a function of (seed, step) alone', () => {
    const a = unetBatch(cache(), acp, 7, 3, 4, 0.1, SIDE, 0.3);
    const b = unetBatch(cache(), acp, 7, 3, 4, 0.1, SIDE, 0.3);
    expect(a.x).toEqual(b.x);
    expect(a.target).toEqual(b.target);
    expect(unetBatch(cache(), acp, 7, 4, 4, 0.1, SIDE, 0.3).target).not.toEqual(a.target);
  });

  it('offset noise adds one constant per image and channel, to the noise and the target alike', () => {
    const plain = unetBatch(cache(), acp, 7, 3, 4, 0.1, SIDE, 0);
    const offset = unetBatch(cache(), acp, 7, 3, 4, 0.1, SIDE, 0.3);
    expect(offset.timesteps).toEqual(plain.timesteps);
    const area = SIDE * SIDE;
    const shifts: number[] = [];
    for (let bc = 0; bc < 4 * 4; bc++) {
      const d0 = offset.target[bc * area]! - plain.target[bc * area]!;
      for (let i = 0; i < area; i++) expect(offset.target[bc * area + i]! - plain.target[bc * area + i]!).toBeCloseTo(d0, 5);
      shifts.push(d0);
      // x_t moves by √(1−ᾱ) times the same constant.
      const b = Math.floor(bc / 4);
      const s = Math.sqrt(1 - acp[plain.timesteps[b]!]!);
      expect(offset.x[bc * area + 5]! - plain.x[bc * area + 5]!).toBeCloseTo(s * d0, 4);
    }
    const rms = Math.sqrt(shifts.reduce((a, v) => a + v * v, 0) / shifts.length);
    expect(rms).toBeGreaterThan(0.1);
    expect(rms).toBeLessThan(0.6);
    expect(new Set(shifts.map((v) => v.toFixed(6))).size).toBe(shifts.length);
  });
});
