/**
 * Autodiff op by op: ORT-compiled gradient graphs and their float64 reference runs against central finite
 * differences, plus coverage of OPS, error paths and the pruning of frozen branches.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, OPS, type OpName } from '../../runtime/graph/index.js';
import { buildGradientGraph, NON_DIFFERENTIABLE, planGradient } from '../../runtime/graph/autodiff/index.js';
import { activeOps, checkGradients, withProbeLoss, type GradCase } from './autodiff-check.js';
import { GRAD_CASES } from './autodiff-cases.js';
import { randWeight } from './harness.js';

const report: string[] = [];
afterAll(() => console.log(`worst relative error vs finite differences (ORT float32 | reference float64):\n${report.join('\n')}`));

describe('autodiff: gradients vs finite differences', () => {
  for (const c of GRAD_CASES) {
    it(c.name, async () => {
      expect(c.sizes.length).toBeGreaterThanOrEqual(2);
      const { worstOrt, worstRef } = await checkGradients(c);
      report.push(`  ${worstOrt.toExponential(2)} | ${worstRef.toExponential(2)}  ${c.name}`);
    });
  }

  it('recomputes scoped blocks without changing the gradients', async () => {
    const c: GradCase = {
      name: 'two scoped blocks (resnet-like, attention) with recomputation',
      sizes: [{ B: 1, H: 3, W: 4 }, { B: 2, H: 4, W: 3 }],
      wrt: ['x', 'rc_gn_w', 'rc_conv'],
      build(g) {
        const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
        const h = g.scope('blk1', () => {
          const n = g.silu(g.groupNorm(x, 2, randWeight(g, 'rc_gn_w', [4], 81), randWeight(g, 'rc_gn_b', [4], 82)));
          return g.add(x, g.conv2d(n, randWeight(g, 'rc_conv', [4, 4, 3, 3], 83), undefined, { padding: 1 }));
        });
        const y = g.scope('blk2', () => {
          const seq = g.reshape(g.transpose(h, [0, 2, 3, 1]), [0, -1, 4]);
          const a = g.attention(seq, seq, g.linear(seq, randWeight(g, 'rc_v', [4, 4], 84)), 2);
          return g.add(h, g.reshapeLike(g.transpose(a, [0, 2, 1]), h));
        });
        return [g.mul(y, g.sigmoid(y))];
      },
    };
    await checkGradients(c, { recompute: true });
    const grad = buildGradientGraph(withProbeLoss(c), { loss: 'loss', wrt: c.wrt, recompute: true });
    const scopes = new Set(grad.nodes.map((n) => n.scope).filter((s) => s?.startsWith('recompute/')));
    expect(scopes).toEqual(new Set(['recompute/blk1', 'recompute/blk2']));
  });

  it('has a gradient test for every differentiable op of OPS', () => {
    const covered = new Set<string>();
    for (const c of GRAD_CASES) for (const op of activeOps(c)) covered.add(op);
    const missing = (Object.keys(OPS) as OpName[]).filter((op) => !(op in NON_DIFFERENTIABLE) && !covered.has(op));
    expect(missing, `differentiable ops without a gradient test: ${missing.join(', ')}`).toEqual([]);
  });
});

describe('autodiff: graph construction', () => {
  it('computes no gradient for a frozen-only branch', () => {
    const build = (withFrozen: boolean) => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', ['B', 4]);
      let h = g.silu(g.linear(x, randWeight(g, 'fz_w', [4, 4], 51)));
      let frozenNodes = 0;
      if (withFrozen) {
        // A deep branch that only reads a frozen input and frozen weights.
        let f = g.input('t', 'float32', ['B', 4]);
        const before = g.graph.nodes.length;
        for (let i = 0; i < 10; i++) f = g.tanh(g.linear(f, randWeight(g, `fz_f${i}`, [4, 4], 60 + i)));
        frozenNodes = g.graph.nodes.length - before;
        h = g.add(h, f);
      }
      g.output('loss', g.reduceSum(g.mul(h, h), [0, 1], false));
      return { graph: g.graph, frozenNodes };
    };
    const plain = build(false);
    const frozen = build(true);
    const gradPlain = buildGradientGraph(plain.graph, { loss: 'loss', wrt: ['x'] });
    const gradFrozen = buildGradientGraph(frozen.graph, { loss: 'loss', wrt: ['x'] });
    const backward = (graph: typeof gradPlain) => graph.nodes.filter((n) => n.scope?.startsWith('grad')).length;
    // The frozen branch adds its forward nodes and the joining add, and not a single backward node.
    expect(gradFrozen.nodes.length - gradPlain.nodes.length).toBe(frozen.frozenNodes + 1);
    expect(backward(gradFrozen)).toBe(backward(gradPlain));
    const plan = planGradient(frozen.graph, { loss: 'loss', wrt: ['x'] });
    expect(plan.active.filter((n) => n.op === 'tanh')).toEqual([]);
    // Frozen weights stay initializers; only wrt weights turn into inputs.
    const withW = buildGradientGraph(frozen.graph, { loss: 'loss', wrt: ['fz_f3'] });
    expect(withW.weights.filter((w) => w.overridable).map((w) => w.name)).toEqual(['fz_f3']);
  });

  it('drops forward nodes the loss does not need', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 3]);
    g.output('other', g.exp(g.sin(x)));
    g.output('loss', g.reduceSum(g.mul(x, x), [0, 1], false));
    const grad = buildGradientGraph(g.graph, { loss: 'loss', wrt: ['x'] });
    expect(grad.nodes.some((n) => n.op === 'sin' || n.op === 'exp')).toBe(false);
    expect(grad.outputs.map((o) => o.name)).toEqual(['loss', 'grad/x']);
  });

  it('returns zeros for a wrt tensor the loss does not depend on', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 3]);
    g.input('unused', 'float32', ['B', 2]);
    g.output('loss', g.reduceSum(g.mul(x, x), [0, 1], false));
    const grad = buildGradientGraph(g.graph, { loss: 'loss', wrt: ['x', 'unused'] });
    const z = grad.nodes.find((n) => n.outputs[0] === grad.outputs[2]!.value);
    expect(z?.op).toBe('reduce_grad');
  });

  it('explains unsupported requests', () => {
    const g = new GraphBuilder();
    const table = g.input('table', 'float32', [5, 3]);
    const ids = g.input('ids', 'int64', ['B']);
    const x = g.input('x', 'float32', ['B', 3]);
    g.output('loss', g.reduceSum(g.mul(g.gather(table, ids), x), [0, 1], false));
    g.output('vec', g.mul(x, x));
    expect(() => buildGradientGraph(g.graph, { loss: 'loss', wrt: ['table'] })).toThrow(/gather has no gradient with respect to its data/);
    expect(() => buildGradientGraph(g.graph, { loss: 'loss', wrt: ['ids'] })).toThrow(/int64/);
    expect(() => buildGradientGraph(g.graph, { loss: 'loss', wrt: ['nope'] })).toThrow(/neither a graph input nor a weight/);
    expect(() => buildGradientGraph(g.graph, { loss: 'vec', wrt: ['x'] })).toThrow(/symbolic shape/);
    expect(() => buildGradientGraph(g.graph, { loss: 'missing', wrt: ['x'] })).toThrow(/no graph output/);
    // The table's gradient is not needed when only x is differentiated.
    expect(() => buildGradientGraph(g.graph, { loss: 'loss', wrt: ['x'] })).not.toThrow();
  });
});
