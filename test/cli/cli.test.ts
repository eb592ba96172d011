import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoModels, DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { readWorkflowFromPng } from '../../runtime/workflow/png.js';
import { REPO, WORKFLOWS } from '../nodes/helpers.js';

const BIN = join(REPO, 'bin', 'resflow.js');

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, RESFLOW_DATA_DIR: cwd }, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A ComfyUI API-format txt2img prompt using only core class names, as scripts send them. */
function comfyApiPrompt(seed = 5) {
  return {
    '3': { class_type: 'KSampler', inputs: { seed, steps: 3, cfg: 8, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 192, height: 128, batch_size: 2 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'beautiful scenery nature glass bottle landscape, purple galaxy bottle,', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'text, watermark', clip: ['4', 1] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } },
  };
}

describe('resflow CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'resflow-cli-'));
    ensureDemoModels(join(dir, 'models'));
  });

  it('runs a ComfyUI API-format txt2img prompt with core class names unchanged', () => {
    const file = join(dir, 'api.json');
    writeFileSync(file, JSON.stringify(comfyApiPrompt()));
    const r = cli(['run', file, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.status).toBe('success');
    expect(out.files).toHaveLength(2);
    for (const f of out.files) expect(existsSync(f)).toBe(true);
  });

  it('--set overrides inputs, --out picks the folder, the PNG embeds the prompt', async () => {
    const out = join(dir, 'custom-out');
    const r = cli(['run', join(WORKFLOWS, 'resadapter-txt2img-256.json'), '--set', 'KSampler.steps=2', '--set', '6.width=128', '--set', '6.height=64', '--out', out, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const files: string[] = JSON.parse(r.stdout).files;
    expect(files.every((f) => f.startsWith(out))).toBe(true);
    const base = files.find((f) => f.includes('base_'))!;
    expect(await sharp(base).metadata()).toMatchObject({ width: 128, height: 64 });
    const embedded = readWorkflowFromPng(readFileSync(base)) as { prompt: Record<string, { inputs: Record<string, unknown> }> };
    expect(embedded.prompt['7']!.inputs.steps).toBe(2);
  });

  it('runs a workflow embedded in a PNG it saved', () => {
    const first = cli(['run', join(WORKFLOWS, 'resadapter-txt2img-256.json'), '--set', 'KSampler.steps=1', '--set', '6.width=64', '--set', '6.height=64', '--json'], dir);
    expect(first.code, first.stderr).toBe(0);
    const png = JSON.parse(first.stdout).files[0];
    const again = cli(['run', png, '--set', 'KSampler.steps=1', '--json'], dir);
    expect(again.code, again.stderr).toBe(0);
  });

  it('exit code 2 and a per-node report for an invalid workflow; 2 for unreadable JSON', () => {
    const bad = comfyApiPrompt() as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
    bad['3']!.inputs.steps = 0;
    bad['3']!.inputs.sampler_name = 'no_such_sampler';
    bad['4']!.inputs.ckpt_name = 'missing.safetensors';
    bad['10'] = { class_type: 'NoSuchNode', inputs: {} };
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify(bad));
    const r = cli(['run', file], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/NoSuchNode/);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"3": {"class_type": ');
    const r2 = cli(['validate', broken], dir);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/not valid JSON/);
    delete bad['10'];
    writeFileSync(file, JSON.stringify(bad));
    const r3 = cli(['validate', file, '--json'], dir);
    expect(r3.code).toBe(2);
    const report = JSON.parse(r3.stdout);
    const types = report.node_errors['3'].errors.map((e: { type: string }) => e.type).sort();
    expect(types).toEqual(['value_not_in_list', 'value_smaller_than_min']);
    expect(report.node_errors['4'].errors[0].type).toBe('value_not_in_list');
  });

  it('exit code 1 for a runtime error (corrupt checkpoint), with the file named', () => {
    writeFileSync(join(dir, 'models', 'checkpoints', 'corrupt.safetensors'), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const p = comfyApiPrompt();
    p['4'].inputs.ckpt_name = 'corrupt.safetensors';
    const file = join(dir, 'corrupt.json');
    writeFileSync(file, JSON.stringify(p));
    const r = cli(['run', file], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/corrupt\.safetensors/);
  });

  it('the training workflow runs from the CLI with loss and lr on the progress bar, and saves a loadable adapter', () => {
    const r = cli(['run', join(WORKFLOWS, 'train-resadapter.json'), '--set', 'TrainResAdapter.steps=4', '--set', 'KSampler.steps=1', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\] \d+\/4 .*loss \d/);
    expect(r.stderr).toMatch(/lr \d/);
    const out = JSON.parse(r.stdout);
    expect(out.files.filter((f: string) => f.endsWith('.png')).length).toBeGreaterThanOrEqual(3);
    expect(existsSync(join(dir, 'models', 'resadapters', 'resflow-demo-trained', 'pytorch_lora_weights.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'models', 'resadapters', 'resflow-demo-trained', 'diffusion_pytorch_model.safetensors'))).toBe(true);
  });

  it('absurd sizes are refused with the numbers, not an allocation crash', () => {
    const p = comfyApiPrompt();
    p['5'].inputs = { width: 16384, height: 16384, batch_size: 4096 };
    const file = join(dir, 'huge.json');
    writeFileSync(file, JSON.stringify(p));
    const r = cli(['run', file], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EmptyLatentImage: a 16384×16384 latent batch of 4096 needs [\d.]+ GiB, more than this machine can process/);
    p['5'].inputs = { width: 16384, height: 16384, batch_size: 1 };
    writeFileSync(file, JSON.stringify(p));
    const r2 = cli(['run', file], dir);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/16384×16384 image \(batch 1\) needs about [\d.]+ GiB for the UNet's activations/);
  });

  it('validate, nodes and convert', () => {
    const v = cli(['validate', join(WORKFLOWS, 'resadapter-txt2img-512.json')], dir);
    expect(v.code, v.stderr).toBe(0);
    const n = cli(['nodes', 'ApplyResAdapter'], dir);
    expect(n.code).toBe(0);
    expect(n.stdout).toMatch(/alpha/);
    const all = cli(['nodes', '--json'], dir);
    expect(Object.keys(JSON.parse(all.stdout))).toEqual(expect.arrayContaining(['KSampler', 'CheckpointLoaderSimple', 'SaveImage', 'ApplyResAdapter']));
    const out = join(dir, 'converted.json');
    const c = cli(['convert', join(WORKFLOWS, 'resadapter-txt2img-512.json'), '--to', 'api', '-o', out], dir);
    expect(c.code, c.stderr).toBe(0);
    const api = JSON.parse(readFileSync(out, 'utf8'));
    expect(api['3'].class_type).toBe('ApplyResAdapter');
    const back = cli(['convert', out, '--to', 'editor'], dir);
    expect(JSON.parse(back.stdout).nodes).toHaveLength(Object.keys(api).length);
    expect(cli(['frobnicate'], dir).code).toBe(2);
  });
});
