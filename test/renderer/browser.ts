import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import { ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { startServer, type RunningServer } from '../../runtime/server/index.js';

export const CHROMIUM = process.env.RESFLOW_CHROMIUM ?? '/usr/bin/chromium';
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = join(REPO, 'test-artifacts', 'editor');

export interface EditorHarness {
  server: RunningServer;
  env: RuntimeEnv;
  browser: Browser;
  page: Page;
  /** Console errors and page errors seen so far (the editor should produce none). */
  problems: string[];
  close(): Promise<void>;
}

/** Builds the editor bundle, starts a server on the demo model and opens the editor in Chromium. */
export async function openEditor(viewport = { width: 1920, height: 1080 }): Promise<EditorHarness> {
  execFileSync(process.execPath, [join(REPO, 'scripts', 'build-renderer.mjs')], { stdio: 'pipe' });
  const dir = mkdtempSync(join(tmpdir(), 'resflow-e2e-'));
  const env = createRuntimeEnv({ dataDir: dir });
  ensureDemoModels(env.folders.modelsDir);
  ensureShapesModel(env.folders.modelsDir);
  const server = await startServer({ env, registry: createCoreRegistry(env), port: 0, log: () => {} });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}/`);
  await waitReady(page);
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    server,
    env,
    browser,
    page,
    problems,
    async close() {
      await browser.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitReady(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
}

export async function shot(page: Page, name: string): Promise<string> {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Dispatches a real drag-and-drop of a file onto the canvas. */
export async function dropFile(page: Page, name: string, data: Buffer, type: string): Promise<void> {
  const transfer = await page.evaluateHandle(
    ({ name, base64, type }) => {
      const binary = atob(base64);
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type }));
      return dt;
    },
    { name, base64: data.toString('base64'), type },
  );
  await page.dispatchEvent('#graph', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#graph', 'drop', { dataTransfer: transfer });
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export function cleanArtifacts(): void {
  rmSync(ARTIFACTS, { recursive: true, force: true });
}
