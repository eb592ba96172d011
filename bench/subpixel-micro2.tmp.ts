import { GraphBuilder } from '../runtime/graph/builder.js';
import { compileGraph } from '../runtime/graph/session.js';
const [C, h, like] = process.argv.slice(2).map(Number) as [number, number, number];
const g = new GraphBuilder();
const x = g.input('x', 'float32', ['B', C, 'H', 'W']);
const ref = g.input('ref', 'float32', ['B', 1, 'Hr', 'Wr']);
const wd = new Float32Array(C * C * 9).map(() => Math.random() * 0.1 - 0.05);
const w = g.weight('w', [C, C, 3, 3], { key: `m${C}`, load: () => wd });
const b = g.weight('b', [C], { key: `mb${C}`, load: () => new Float32Array(C) });
const y = g.conv2d(like ? g.upsampleNearestLike(x, ref) : g.upsampleNearest(x, 2), w, b, { padding: 1 });
g.output('y', g.add(y, ref));
for (const odd of [0, 1]) {
const hr = 2 * h - odd;
const feeds = { x: { data: new Float32Array(2 * C * h * h).map(() => Math.random()), dims: [2, C, h, h] }, ref: { data: new Float32Array(2 * hr * hr), dims: [2, 1, hr, hr] } };
if (odd && !like) continue;
for (const precision of ['fp32', 'int8'] as const) for (const subpixel of [false, true]) {
  const s = await compileGraph(g.graph, { precision, subpixel });
  await s.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < 3; i++) { const t0 = performance.now(); await s.run(feeds); ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b);
  console.log(`${like ? 'like' : 'static'} C=${C} ${h}²→${hr}² b2 ${precision} ${subpixel ? 'subpixel' : 'plain'}: ${ts[1]!.toFixed(0)} ms`);
}}
