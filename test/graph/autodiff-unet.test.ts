/**
 * Autodiff on the whole tiny UNet with loss = mean((eps − target)²): gradients w.r.t. resnet norm affines
 * and the down/upsampler convs checked by directional derivatives of the float64 reference, one compiled
 * gradient graph for every latent size (odd ones included), recomputation, and pruning of frozen branches.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGraph, type CompiledSession, type Graph, type TensorData } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { buildGradientGraph, isShapeOnlyInput, planGradient } from '../../runtime/graph/autodiff/index.js';
import { rng } from './harness.js';
import { TRAINABLE, tinyUnetFeeds, tinyUnetLossGraph } from './autodiff-unet-fixture.js';

const SIZES = [
  { b: 1, h: 8, w: 8 },
  { b: 2, h: 7, w: 9 }, // odd: the stride-2 conv rounds up and the upsampler must land back on 7×9
];
const H = 1e-3;
const rms = (x: Float64Array) => Math.max(1e-2, Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length));

describe('autodiff: tiny UNet, eps-MSE loss', () => {
  let forward: Graph;
  let plain: Graph;
  let recomputed: Graph;
  let session: CompiledSession;
  let base: Map<string, Float64Array>;

  beforeAll(async () => {
    forward = tinyUnetLossGraph();
    plain = buildGradientGraph(forward, { loss: 'loss', wrt: TRAINABLE });
    recomputed = buildGradientGraph(forward, { loss: 'loss', wrt: TRAINABLE, recompute: true });
    session = await compileGraph(plain);
    base = new Map(forward.weights.map((w) => [w.name, Float64Array.from(w.source.load())]));
  });

  const refLoss = (feeds: Record<string, TensorData>, weights: Map<string, Float64Array>) =>
    evaluateReference(forward, feeds as Record<string, RefFeed>, weights).loss!.data[0]!;

  for (const { b, h, w } of SIZES) {
    it(`directional derivatives match the float64 reference at B=${b}, ${h}×${w}`, async () => {
      const feeds = tinyUnetFeeds(b, h, w, 11 * h + w);
      const got = await session.run(feeds);
      expect(got.loss!.data[0]).toBeCloseTo(refLoss(feeds, base), 5);
      const r = rng(h * 100 + w);
      let worst = 0;
      // One direction per trainable tensor, then one moving all of them at once. Each direction is scaled to
      // its tensor's RMS, so h is a relative step and the central difference stays in its O(h²) regime.
      const directions = [...TRAINABLE.map((t) => [t]), TRAINABLE];
      for (const names of directions) {
        const v = new Map(
          names.map((n) => {
            const scale = rms(base.get(n)!);
            return [n, Float64Array.from(base.get(n)!, () => scale * (r() * 2 - 1))];
          }),
        );
        let analytic = 0;
        for (const [n, dir] of v) {
          const g = got[`grad/${n}`]!.data as Float32Array;
          expect(g.length).toBe(dir.length);
          for (let i = 0; i < dir.length; i++) analytic += g[i]! * dir[i]!;
        }
        const shifted = (sign: number) => {
          const ws = new Map(base);
          for (const [n, dir] of v) ws.set(n, base.get(n)!.map((x, i) => x + sign * H * dir[i]!));
          return refLoss(feeds, ws);
        };
        const numeric = (shifted(1) - shifted(-1)) / (2 * H);
        const what = `⟨grad, v⟩ along ${names.length > 1 ? 'all trainables' : names[0]}: ${analytic} vs (L(θ+hv) − L(θ−hv))/2h = ${numeric}`;
        expect(Math.abs(analytic - numeric), what).toBeLessThan(1e-3 * Math.abs(numeric) + 1e-7);
        worst = Math.max(worst, Math.abs(analytic - numeric) / Math.abs(numeric));
      }
      console.log(`B=${b} ${h}×${w}: worst relative error of ⟨grad, v⟩ over ${directions.length} directions: ${worst.toExponential(2)}`);
    });
  }

  it('ORT gradients match the float64 reference run of the same gradient graph', async () => {
    const feeds = tinyUnetFeeds(1, 6, 10, 5);
    const got = await session.run(feeds);
    const ref = evaluateReference(plain, feeds as Record<string, RefFeed>);
    for (const t of TRAINABLE) {
      const a = got[`grad/${t}`]!.data as Float32Array;
      const e = ref[`grad/${t}`]!.data;
      const scale = e.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const worst = a.reduce((m, x, i) => Math.max(m, Math.abs(x - e[i]!)), 0);
      expect(worst / scale, `grad/${t}`).toBeLessThan(1e-3);
    }
  });

  it('recomputation gives the same gradients without the backward reading block-internal activations', async () => {
    const rec = await compileGraph(recomputed);
    const feeds = tinyUnetFeeds(2, 7, 9, 3);
    const [a, r] = [await session.run(feeds), await rec.run(feeds)];
    for (const t of [...TRAINABLE.map((n) => `grad/${n}`), 'loss']) {
      const x = a[t]!.data as Float32Array;
      const y = r[t]!.data as Float32Array;
      const scale = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(y.reduce((m, v, i) => Math.max(m, Math.abs(v - x[i]!)), 0) / scale, t).toBeLessThan(1e-5);
    }
    const isForward = (scope?: string) => !scope?.startsWith('grad') && !scope?.startsWith('recompute');
    const fwdNodes = recomputed.nodes.filter((n) => isForward(n.scope));
    const scopeOf = new Map(fwdNodes.map((n) => [n.outputs[0]!, n.scope]));
    const internal = new Set(
      [...scopeOf].filter(([v, s]) => s !== undefined && v !== recomputed.outputs[0]!.value && fwdNodes.every((n) => !n.inputs.includes(v) || n.scope === s)).map(([v]) => v),
    );
    expect(internal.size).toBeGreaterThan(100);
    const leaks = recomputed.nodes.filter((n) => !isForward(n.scope) && n.inputs.some((v, slot) => internal.has(v) && !isShapeOnlyInput(n.op, slot)));
    expect(leaks.map((n) => `${n.op} @ ${n.scope}`)).toEqual([]);
    expect(recomputed.nodes.filter((n) => n.scope?.startsWith('recompute/')).length).toBeGreaterThan(100);
    // Without recomputation the backward does read them.
    expect(plain.nodes.filter((n) => n.scope?.startsWith('grad') && n.inputs.some((v) => internal.has(v))).length).toBeGreaterThan(100);
  });

  it('computes nothing for frozen-only branches', () => {
    const timeEmbed = (g: Graph) => g.nodes.filter((n) => n.op === 'sin' || n.op === 'cos' || (n.scope === undefined && n.op === 'linear'));
    const plan = planGradient(forward, { loss: 'loss', wrt: TRAINABLE });
    // The timestep embedding only sees frozen weights: it stays in the forward, with no backward rule.
    expect(timeEmbed(forward).length).toBeGreaterThan(3);
    expect(plan.active.filter((n) => timeEmbed(forward).includes(n))).toEqual([]);
    // Differentiating only the last upsampler conv leaves everything before it without backward nodes.
    const late = buildGradientGraph(forward, { loss: 'loss', wrt: [TRAINABLE[4]!] });
    const backward = (g: Graph) => g.nodes.filter((n) => n.scope?.startsWith('grad'));
    const early = backward(late).filter((n) => /^grad\/(input_blocks|middle_block|output_blocks\.[01]\.)/.test(n.scope!));
    expect(early.map((n) => n.scope)).toEqual([]);
    expect(backward(late).length).toBeLessThan(backward(plain).length / 2);
    expect(late.nodes.length - backward(late).length).toBe(plan.forward.length);
    console.log(
      `tiny UNet: forward ${plan.forward.length} nodes (${plan.active.length} on gradient paths); gradient graph ${plain.nodes.length} nodes, ` +
        `${recomputed.nodes.length} with recomputation; late-conv-only ${late.nodes.length}`,
    );
  });
});
