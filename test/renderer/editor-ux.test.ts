import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { dropFile, openEditor, type EditorHarness } from './browser.js';

/**
 * The editor as a new user meets it, in Chromium at 1600×900: readable default zoom, search, the
 * Workflows and Models panels, API imports without overlaps, partial-prompt errors that clear, toasts
 * that close, and the image viewer's compare modes.
 */
type Box = { id: string; x: number; y: number; w: number; h: number };
type Debug = {
  nodeTypes(): { id: string; type: string; title: string }[];
  nodeErrors(id: string): { has_errors: boolean; messages: string[] };
  scale(): number;
  readableScale(): number;
  nodeBoxes(): Box[];
  viewerOpen(): boolean;
  centerOn(id: string): void;
  screenPos(id: string, dx: number, dy: number): [number, number];
  model(): { nodes: Record<string, { type: string; widgets: Record<string, unknown> }> };
};

function rf<T>(page: Page, fn: (r: Debug) => T): Promise<T> {
  return page.evaluate(`(${fn.toString()})(window.resflow)`) as Promise<T>;
}

/** A small API-format prompt: a valid 64×64 branch (batch 2) and optionally a SaveImage with no input. */
function apiPrompt(brokenOutput: boolean) {
  const p: Record<string, { class_type: string; inputs: Record<string, unknown> }> = {
    '3': { class_type: 'KSampler', inputs: { seed: 3, steps: 1, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 2 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a glass bottle', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ux', images: ['8', 0] } },
  };
  if (brokenOutput) p['13'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'broken' } };
  return p;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

describe('editor UX in Chromium at 1600×900', () => {
  let h: EditorHarness;
  let page: Page;
  beforeAll(async () => {
    h = await openEditor({ width: 1600, height: 900 });
    page = h.page;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('loads without console errors, at a zoom where node text is at least 11 px', async () => {
    expect(h.problems).toEqual([]);
    const [scale, readable] = [await rf(page, (r) => r.scale()), await rf(page, (r) => r.readableScale())];
    expect(readable * 12).toBeGreaterThanOrEqual(11);
    expect(scale).toBeGreaterThanOrEqual(readable);
  });

  it('search finds nodes by display name, class name and alias, ranked ("Image Scale" → Upscale Image)', async () => {
    await page.fill('.library-search', 'Image Scale');
    expect((await page.locator('.library-node').first().textContent())?.trim()).toBe('Upscale Image');
    await page.fill('.library-search', 'resize');
    expect(await page.locator('.library-node').allTextContents()).toContain('Upscale Image');
    await page.fill('.library-search', '');
    // litegraph's canvas search box (double click on empty canvas: the margin left of the graph) ranks the same way.
    const box = (await page.locator('#graph').boundingBox())!;
    const search = page.locator('.litesearchbox input');
    for (let attempt = 0; attempt < 3 && !(await search.isVisible()); attempt++) {
      await page.mouse.dblclick(box.x + 12, box.y + box.height * 0.6);
      await search.waitFor({ timeout: 3000 }).catch(() => undefined);
    }
    await search.pressSequentially('Image Scale');
    await expect.poll(async () => (await page.locator('.litesearchbox .lite-search-item').first().textContent())?.startsWith('Upscale Image')).toBe(true);
    await search.press('Escape');
  });

  it('Workflows panel opens the bundled templates (the training graph stays readable too)', async () => {
    await page.click('[data-tab=workflows]');
    await page.waitForSelector('[data-template="train-resadapter.json"]');
    expect(await page.locator('[data-template]').count()).toBeGreaterThanOrEqual(5);
    // Every template name shows in full (several share a long prefix), none cut off in the narrow sidebar.
    const clipped = await page.locator('[data-template] .name').evaluateAll((names) => names.filter((n) => n.scrollWidth > n.clientWidth).map((n) => n.textContent));
    expect(clipped).toEqual([]);
    await page.click('[data-template="train-resadapter.json"] [data-action=open]');
    await expect.poll(() => page.locator('.workflow-name').textContent()).toBe('train-resadapter');
    expect((await rf(page, (r) => r.nodeTypes())).map((n) => n.type)).toContain('TrainResAdapter');
    expect(await rf(page, (r) => r.scale())).toBeGreaterThanOrEqual(await rf(page, (r) => r.readableScale()));
  });

  it('saves the canvas to the server, renames, reopens and deletes it', async () => {
    const answers = ['my-flow', 'renamed-flow'];
    const onDialog = (d: import('playwright-core').Dialog) => void (d.type() === 'confirm' ? d.accept() : d.accept(answers.shift()));
    page.on('dialog', onDialog);
    try {
      const file = (n: string) => join(h.env.dataDir, 'user', 'default', 'workflows', n);
      await page.click('[data-action=save-to-workflows]');
      await page.waitForSelector('[data-saved="my-flow.json"]');
      expect(existsSync(file('my-flow.json'))).toBe(true);
      await page.click('[data-saved="my-flow.json"] [data-action=rename]');
      await page.waitForSelector('[data-saved="renamed-flow.json"]');
      expect(existsSync(file('my-flow.json'))).toBe(false);
      await page.click('[data-template="resadapter-txt2img-256.json"] [data-action=open]');
      await expect.poll(() => page.locator('.workflow-name').textContent()).toBe('resadapter-txt2img-256');
      await page.click('[data-saved="renamed-flow.json"] .name');
      await expect.poll(async () => (await rf(page, (r) => r.nodeTypes())).some((n) => n.type === 'TrainResAdapter')).toBe(true);
      await page.click('[data-saved="renamed-flow.json"] [data-action=delete]');
      await page.waitForSelector('[data-saved="renamed-flow.json"]', { state: 'detached' });
      expect(existsSync(file('renamed-flow.json'))).toBe(false);
    } finally {
      page.off('dialog', onDialog);
    }
  });

  it('Models panel lists folders with the loading node; dropping a file creates that node', async () => {
    await page.click('[data-tab=models]');
    const item = page.locator(`[data-folder=checkpoints] [data-model="${DEMO_CHECKPOINT}"]`);
    await item.waitFor();
    expect(await item.getAttribute('data-node-type')).toBe('CheckpointLoaderSimple');
    expect(await item.locator('.loader').textContent()).toBe('→ CheckpointLoaderSimple.ckpt_name');
    const before = (await rf(page, (r) => r.nodeTypes())).length;
    const transfer = await page.evaluateHandle((file) => {
      const dt = new DataTransfer();
      dt.setData('application/x-resflow-model', JSON.stringify({ nodeType: 'CheckpointLoaderSimple', input: 'ckpt_name', value: file }));
      return dt;
    }, DEMO_CHECKPOINT);
    await page.dispatchEvent('#graph', 'dragover', { dataTransfer: transfer, clientX: 800, clientY: 400 });
    await page.dispatchEvent('#graph', 'drop', { dataTransfer: transfer, clientX: 800, clientY: 400 });
    await expect.poll(async () => (await rf(page, (r) => r.nodeTypes())).length).toBe(before + 1);
    const model = await rf(page, (r) => r.model());
    const loaders = Object.values(model.nodes).filter((n) => n.type === 'CheckpointLoaderSimple');
    expect(loaders.map((n) => n.widgets.ckpt_name)).toContain(DEMO_CHECKPOINT);
    await page.click('[data-tab=nodes]');
  });

  it('an API-format import is laid out with no overlapping nodes', async () => {
    await dropFile(page, 'api-prompt.json', Buffer.from(JSON.stringify(apiPrompt(true))), 'application/json');
    await expect.poll(async () => (await rf(page, (r) => r.nodeTypes())).length).toBe(8);
    const boxes = await rf(page, (r) => r.nodeBoxes());
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) expect(overlaps(boxes[i]!, boxes[j]!), `${boxes[i]!.id} overlaps ${boxes[j]!.id}`).toBe(false);
  });

  it('a partly invalid prompt outlines the failing node with its message; the next clean run clears it', async () => {
    await page.click('[data-action=queue]');
    await expect.poll(() => rf(page, (r) => r.nodeErrors('13').has_errors)).toBe(true);
    expect((await rf(page, (r) => r.nodeErrors('13'))).messages.join(' ')).toMatch(/images/);
    expect(await page.locator('#errors').isVisible()).toBe(true);
    expect(await page.locator('#errors').textContent()).toMatch(/#13 SaveImage/);
    // The valid branch runs; the invalid node stays flagged after the run.
    await page.waitForSelector('.history-item.done', { timeout: 60_000 });
    expect((await rf(page, (r) => r.nodeErrors('13'))).has_errors).toBe(true);
    expect(await page.locator('#toasts .toast-error').count()).toBeGreaterThan(0);

    await dropFile(page, 'api-clean.json', Buffer.from(JSON.stringify(apiPrompt(false))), 'application/json');
    await expect.poll(async () => (await rf(page, (r) => r.nodeTypes())).length).toBe(7);
    await page.click('[data-action=queue]');
    await expect.poll(() => page.locator('.history-item.done').count(), { timeout: 60_000 }).toBe(2);
    await expect.poll(() => page.locator('#toasts .toast-error').count()).toBe(0);
    expect(await page.locator('#errors').isVisible()).toBe(false);
    const flagged = await page.evaluate(() => {
      const r = (window as unknown as { resflow: Debug }).resflow;
      return r.nodeTypes().filter((n) => r.nodeErrors(n.id).has_errors).map((n) => n.id);
    });
    expect(flagged).toEqual([]);
  });

  it('toasts close with their × button', async () => {
    await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((t) => t.remove()));
    await page.locator('.history-item').first().getByRole('button', { name: 'Load' }).click();
    const t = page.locator('#toasts .toast', { hasText: 'Workflow loaded from history' });
    await t.waitFor();
    await t.locator('.toast-close').click();
    await t.waitFor({ state: 'detached' });
  });

  it('output images open in a viewer with side-by-side and slider compare', async () => {
    const thumbs = page.locator('.history-item').first().locator('.history-thumb');
    await expect.poll(() => thumbs.count()).toBe(2);
    await thumbs.first().click();
    // The viewer opens and loads its images asynchronously: wait for the state, then assert it.
    await expect.poll(() => rf(page, (r) => r.viewerOpen())).toBe(true);
    await expect.poll(() => page.locator('.viewer-stage.side figure').count()).toBe(2);
    const [a, b] = await page.locator('.viewer-stage.side img').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).src));
    expect(a).not.toBe(b);
    // Small outputs are scaled up to fill the stage (side by side: the smaller of 44 % of the width, 70 % of the height).
    await expect.poll(() => page.locator('.viewer-stage.side img').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth))).not.toContain(0);
    const sizes = await page.locator('.viewer-stage.side img').evaluateAll((imgs) => imgs.map((i) => [(i as HTMLImageElement).naturalWidth, i.getBoundingClientRect().width]));
    const stage = await page.evaluate(() => Math.min(0.44 * innerWidth, 0.7 * innerHeight));
    for (const [natural, shown] of sizes) {
      expect(natural).toBeLessThan(stage);
      expect(shown).toBeCloseTo(stage, 0);
    }
    await page.click('.viewer [data-mode=slider]');
    const top = page.locator('.viewer-slider-b');
    await expect.poll(() => top.evaluate((e) => (e as HTMLElement).style.clipPath)).toBe('inset(0px 0px 0px 50%)');
    await page.locator('.viewer-range').fill('20');
    await expect.poll(() => top.evaluate((e) => (e as HTMLElement).style.clipPath)).toBe('inset(0px 0px 0px 20%)');
    await page.keyboard.press('Escape');
    await expect.poll(() => rf(page, (r) => r.viewerOpen())).toBe(false);
    // A double click on the SaveImage node's images opens the same viewer.
    // The canvas may still be settling after centerOn (a redraw, a busy CI machine): re-aim and retry the double click.
    for (let attempt = 0; attempt < 10 && !(await rf(page, (r) => r.viewerOpen())); attempt++) {
      await page.evaluate(() => (window as unknown as { resflow: Debug }).resflow.centerOn('9'));
      await page.waitForTimeout(100 + 100 * attempt);
      const [x, y] = await page.evaluate(() => (window as unknown as { resflow: Debug }).resflow.screenPos('9', 120, 150));
      await page.mouse.dblclick(x, y);
      await page.waitForTimeout(300);
    }
    await expect.poll(() => rf(page, (r) => r.viewerOpen())).toBe(true);
    await expect.poll(() => page.locator('.viewer-stage figure').count()).toBe(2);
    await page.click('.viewer-close');
    await expect.poll(() => rf(page, (r) => r.viewerOpen())).toBe(false);
  });

  it('error toasts expire on their own (12 s), info toasts sooner', async () => {
    const fresh = await page.context().newPage();
    try {
      await fresh.clock.install();
      await fresh.goto(h.server.url + '/');
      await fresh.waitForFunction(() => document.body.dataset.ready === 'true');
      await dropFile(fresh, 'broken.json', Buffer.from('{"nodes": ['), 'application/json');
      const error = fresh.locator('#toasts .toast-error', { hasText: 'Could not load broken.json' });
      await error.waitFor();
      await fresh.clock.runFor(11_000);
      expect(await error.count()).toBe(1);
      await fresh.clock.runFor(2_000);
      expect(await error.count()).toBe(0);
    } finally {
      await fresh.close();
    }
  });

  it('produced no console or page errors', () => {
    expect(h.problems, h.problems.join('\n')).toEqual([]);
  });
});
