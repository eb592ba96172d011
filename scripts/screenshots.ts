// Refreshes the editor screenshots in docs/ (not part of the test run): `npm run screenshots`.
// Starts a server on the demo and Shapes models in a scratch data folder, drives Debian's Chromium (RESFLOW_CHROMIUM
// to override) at 1600×900, runs the default ResAdapter workflow and captures the main views.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { startServer } from '../runtime/server/index.js';
import { ensureShapesModel } from '../runtime/shapes/provision.js';

const root = join(import.meta.dirname, '..');
const docs = join(root, 'docs');
execFileSync(process.execPath, [join(root, 'scripts', 'build-renderer.mjs')], { stdio: 'inherit' });
const dir = mkdtempSync(join(tmpdir(), 'resflow-shots-'));
const env = createRuntimeEnv({ dataDir: dir });
ensureDemoModels(env.folders.modelsDir);
// The editor opens on the ResFlow Shapes workflow; `resflow serve` provisions it the same way.
ensureShapesModel(env.folders.modelsDir);
const server = await startServer({ env, registry: createCoreRegistry(env), port: 0, log: () => {} });
const browser = await chromium.launch({ executablePath: process.env.RESFLOW_CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1600, height: 900 } })).newPage();
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const shot = async (name: string) => {
    await page.waitForTimeout(300);
    // Noise-like demo outputs compress badly as PNG: views full of them are JPEG.
    await page.screenshot({ path: join(docs, name), ...(name.endsWith('.jpg') ? { type: 'jpeg' as const, quality: 80 } : {}) });
    console.log(`docs/${name}`);
  };

  await page.click('[data-action=queue]');
  await page.waitForSelector('.history-item.done', { timeout: 180_000 });
  await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((t) => t.remove()));
  await shot('editor.png');

  await page.locator('.history-item').first().locator('.history-thumb').first().click();
  // Base | ResAdapter, as the default workflow names its outputs.
  const pick = async (select: string, prefix: string) => {
    const value = await page.$eval(select, (s, p) => Array.from((s as HTMLSelectElement).options).find((o) => o.text.startsWith(p))?.value ?? '0', prefix);
    await page.selectOption(select, value);
  };
  await page.click('.viewer [data-mode=side]');
  await pick('.viewer-pick-a', 'base_');
  await pick('.viewer-pick-b', 'resadapter_');
  await shot('editor-compare.jpg');
  await page.click('.viewer [data-mode=slider]');
  await page.locator('.viewer-range').fill('50');
  await shot('editor-slider.jpg');
  await page.keyboard.press('Escape');

  await page.click('[data-tab=workflows]');
  await page.waitForSelector('[data-template]');
  await shot('editor-workflows.png');
  await page.click('[data-tab=models]');
  await page.waitForSelector('[data-model]');
  await shot('editor-models.png');
  await page.click('[data-tab=nodes]');
  await page.fill('.library-search', 'Image Scale');
  await shot('editor-search.png');
} finally {
  await browser.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
