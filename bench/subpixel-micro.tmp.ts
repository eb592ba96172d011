import { GraphBuilder } from '../runtime/graph/builder.js';
import { compileGraph } from '../runtime/graph/session.js';
const [C, h] = process.argv.slice(2).map(Number) as [number, number];
const g = new GraphBuilder();
const x = g.input('x', 'float32', [1, C, 'H', 'W']);
const wd = new Float32Array(C * C * 9).map(() => Math.random() * 0.1 - 0.05);
const w = g.weight('w', [C, C, 3, 3], { key: `m${C}`, load: () => wd });
const b = g.weight('b', [C], { key: `mb${C}`, load: () => new Float32Array(C) });
g.output('y', g.conv2d(g.upsampleNearest(x, 2), w, b, { padding: 1 }));
const feeds = { x: { data: new Float32Array(C * h * h).map(() => Math.random()), dims: [1, C, h, h] } };
for (const precision of ['fp32', 'int8'] as const) for (const subpixel of [false, true]) {
  const s = await compileGraph(g.graph, { precision, subpixel });
  await s.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < 3; i++) { const t0 = performance.now(); await s.run(feeds); ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b);
  console.log(`C=${C} ${h}²→${2 * h}² ${precision} ${subpixel ? 'subpixel' : 'plain'}: ${ts[1]!.toFixed(0)} ms`);
}
