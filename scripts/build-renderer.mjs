#!/usr/bin/env node
// Bundles the editor (renderer/src) into renderer/dist with esbuild: one ES module, its CSS next to it.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'renderer', 'dist');
const watch = process.argv.includes('--watch');
const dev = watch || process.argv.includes('--dev');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
copyFileSync(join(root, 'renderer', 'index.html'), join(out, 'index.html'));
copyFileSync(join(root, 'renderer', 'style.css'), join(out, 'style.css'));
copyFileSync(join(root, 'node_modules', '@comfyorg', 'litegraph', 'dist', 'css', 'litegraph.css'), join(out, 'litegraph.css'));

const options = {
  entryPoints: [join(root, 'renderer', 'src', 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  sourcemap: true,
  minify: !dev,
  legalComments: 'linked',
  logLevel: 'info',
};

if (watch) {
  const { context } = await import('esbuild');
  const ctx = await context(options);
  await ctx.watch();
  console.log('watching renderer/src …');
} else {
  await build(options);
}
