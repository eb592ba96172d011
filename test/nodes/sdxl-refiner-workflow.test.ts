/**
 * The shipped base → refiner workflow (workflows/sdxl-refiner-two-stage.json) on the demo SDXL base and
 * refiner: it validates, hands the base's noisy latent to the refiner at the switch step, and renders.
 */
import sharp from 'sharp';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { detectFamily } from '../../runtime/models/checkpoint.js';
import { DEMO_CONTROLNET, DEMO_INPUT_IMAGE } from '../../runtime/models/synthetic/demo.js';
import { DEMO_SDXL_REFINER_CHECKPOINT } from '../../runtime/models/synthetic/demo-sdxl-refiner.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { demoRuntime, loadWorkflowPrompt, shrink, type TestRuntime } from './helpers.js';

const FILE = 'sdxl-refiner-two-stage.json';

describe('SDXL base → refiner workflow', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-refiner-wf-');
  });

  async function render(prompt: ApiPrompt): Promise<Buffer> {
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
    const r = await new Executor().run(v.graph);
    expect(r.status, JSON.stringify(r.error)).toBe('success');
    const img = (r.outputs['11']!.images as Array<{ filename: string; subfolder: string }>)[0]!;
    return sharp(join(rt.env.outputDir, img.subfolder, img.filename)).raw().toBuffer({ resolveWithObject: true }).then(({ data, info }) => {
      expect([info.width, info.height]).toEqual([128, 128]);
      return data;
    });
  }

  it('ships a demo refiner detected as one, and the two-stage graph wired as ComfyUI’s example', () => {
    expect(detectFamily(SafetensorsFile.open(rt.env.folders.resolve('checkpoints', DEMO_SDXL_REFINER_CHECKPOINT)))).toBe('sdxl-refiner');
    const { prompt } = loadWorkflowPrompt(FILE, rt.registry);
    const base = prompt['8']!.inputs;
    const refiner = prompt['9']!.inputs;
    expect([prompt['8']!.class_type, prompt['9']!.class_type]).toEqual(['KSamplerAdvanced', 'KSamplerAdvanced']);
    expect(base).toMatchObject({ model: ['1', 0], add_noise: 'enable', return_with_leftover_noise: 'enable', start_at_step: 0 });
    expect(refiner).toMatchObject({ model: ['2', 0], add_noise: 'disable', latent_image: ['8', 0], start_at_step: base.end_at_step, steps: base.steps });
    expect(prompt['3']!.class_type).toBe('CLIPTextEncodeSDXL');
    expect(prompt['5']!.class_type).toBe('CLIPTextEncodeSDXLRefiner');
    expect(prompt['6']!.inputs.ascore).toBe(2.5);
  });

  it('runs end to end; the refiner stage changes the picture the base alone would give', async () => {
    const { prompt } = loadWorkflowPrompt(FILE, rt.registry);
    const twoStage = shrink(prompt, 4, 128);
    expect([twoStage['8']!.inputs.end_at_step, twoStage['9']!.inputs.start_at_step]).toEqual([3, 3]);
    const image = await render(twoStage);
    // A real render, not a flat canvas.
    const mean = image.reduce((a, v) => a + v, 0) / image.length;
    expect(image.reduce((a, v) => a + (v - mean) ** 2, 0) / image.length).toBeGreaterThan(1);
    // The same graph with the switch at the end: the base finishes alone, the refiner has nothing left to do.
    const baseOnly = structuredClone(twoStage);
    baseOnly['8']!.inputs.end_at_step = 4 as never;
    baseOnly['9']!.inputs.start_at_step = 4 as never;
    expect((await render(baseOnly)).equals(image)).toBe(false);
  });

  it('a ControlNet on the refiner stage is refused by name (the family has no ControlNet layout)', async () => {
    const { prompt } = loadWorkflowPrompt(FILE, rt.registry);
    const p = shrink(prompt, 2, 64);
    p['20'] = { class_type: 'ControlNetLoader', inputs: { control_net_name: DEMO_CONTROLNET } } as ApiPrompt[string];
    p['21'] = { class_type: 'LoadImage', inputs: { image: DEMO_INPUT_IMAGE } } as ApiPrompt[string];
    p['22'] = {
      class_type: 'ControlNetApplyAdvanced',
      inputs: { positive: ['5', 0], negative: ['6', 0], control_net: ['20', 0], image: ['21', 0], strength: 1, start_percent: 0, end_percent: 1 },
    } as unknown as ApiPrompt[string];
    Object.assign(p['9']!.inputs, { positive: ['22', 0], negative: ['22', 1] });
    const v = await validatePrompt(p, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    const r = await new Executor().run(v.graph);
    expect(r.status).toBe('error');
    expect(r.error?.node_id).toBe('9');
    expect(r.error?.exception_message).toMatch(/ControlNets are not supported on SDXL refiner models/);
  });
});
