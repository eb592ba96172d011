import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CHECKPOINT, ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { REPO } from '../nodes/helpers.js';

const BIN = join(REPO, 'bin', 'resflow.js');

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, RESFLOW_DATA_DIR: cwd }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Prompt = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** A one-step 64×64 txt2img prompt on the demo model. */
function prompt(): Prompt {
  return {
    '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 1, cfg: 8, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a bottle', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'good', images: ['8', 0] } },
  };
}

/** `prompt()` plus a second branch 10 -> 11 -> 12 -> 10 that is a cycle; output 13 depends on it. */
function withCycle(): Prompt {
  const p = prompt();
  p['10'] = { class_type: 'VAEDecode', inputs: { samples: ['11', 0], vae: ['4', 2] } };
  p['11'] = { class_type: 'KSampler', inputs: { ...p['3']!.inputs, latent_image: ['12', 0] } };
  p['12'] = { class_type: 'VAEEncode', inputs: { pixels: ['10', 0], vae: ['4', 2] } };
  p['13'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'cyclic', images: ['10', 0] } };
  return p;
}

describe('resflow CLI exit codes', () => {
  let dir: string;
  const file = (name: string, p: Prompt) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(p));
    return f;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'resflow-exit-'));
    ensureDemoModels(join(dir, 'models'));
  });

  it('validate: 0 for a clean workflow', () => {
    const r = cli(['validate', file('ok.json', prompt())], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^valid: 7 nodes, outputs 9/);
  });

  it('validate and run: 2 for a cycle beside a valid branch, every cycle node listed; --json says ok:false', () => {
    const f = file('cycle.json', withCycle());
    const v = cli(['validate', f], dir);
    expect(v.code).toBe(2);
    for (const id of ['10', '11', '12']) expect(v.stderr).toMatch(new RegExp(`node ${id} \\(\\w+\\): Dependency cycle detected`));
    const j = cli(['validate', f, '--json'], dir);
    expect(j.code).toBe(2);
    const report = JSON.parse(j.stdout);
    expect(report.ok).toBe(false);
    expect(Object.keys(report.node_errors).sort()).toEqual(['10', '11', '12']);
    expect(report.runnable_outputs).toEqual(['9']);
    const r = cli(['run', f, '--quiet'], dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--partial runs the valid outputs anyway/);
  });

  it('run --partial runs the valid outputs, reports the invalid ones, and exits 0', () => {
    const r = cli(['run', file('cycle-partial.json', withCycle()), '--partial', '--json', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.status).toBe('success');
    expect(Object.keys(out.outputs)).toEqual(['9']);
    expect(out.files).toHaveLength(1);
    expect(out.files[0]).toMatch(/good_\d+_\.png$/);
    expect(Object.keys(out.node_errors).sort()).toEqual(['10', '11', '12']);
  });

  it('validate and run: 2 for a MODEL→LATENT link, naming the input and both types', () => {
    const p = prompt();
    p['3']!.inputs.latent_image = ['4', 0];
    const f = file('model-latent.json', p);
    for (const cmd of ['validate', 'run']) {
      const r = cli([cmd, f], dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/node 3 \(KSampler\)\.latent_image: Return type mismatch.*MODEL != LATENT/);
    }
  });

  it('validate and run: 2 for steps=0 and cfg=-1, both errors printed; --json ok:false', () => {
    const p = prompt();
    p['3']!.inputs.steps = 0;
    p['3']!.inputs.cfg = -1;
    const f = file('ranges.json', p);
    const r = cli(['run', f], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/node 3 \(KSampler\)\.steps: Value 0 smaller than min of 1/);
    expect(r.stderr).toMatch(/node 3 \(KSampler\)\.cfg: Value -1 smaller than min of 0/);
    const j = cli(['validate', f, '--json'], dir);
    expect(j.code).toBe(2);
    const report = JSON.parse(j.stdout);
    expect(report.ok).toBe(false);
    expect(report.node_errors['3'].errors.map((e: { extra_info: { input_name: string } }) => e.extra_info.input_name).sort()).toEqual(['cfg', 'steps']);
  });

  it('--set with an unknown input is an error listing the inputs with a did-you-mean', () => {
    const f = file('set.json', prompt());
    for (const cmd of ['run', 'validate']) {
      const r = cli([cmd, f, '--set', 'KSampler.stepz=4'], dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/KSampler \(node 3\) has no input "stepz" \(did you mean "steps"\?\); its inputs: model, seed, steps, cfg/);
    }
    expect(cli(['validate', f, '--set', 'KSampler.steps=4'], dir).code).toBe(0);
  });

  it('nodes: case-insensitive lookup, display names, suggestions for unknown names', () => {
    const r = cli(['nodes', 'ksampler'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^KSampler — /);
    const d = cli(['nodes', 'upscale image'], dir);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^ImageScale — Upscale Image/);
    const u = cli(['nodes', 'KSamplr'], dir);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/unknown node type "KSamplr"; did you mean: KSampler/);
  });

  it('convert without --to converts to the other format', () => {
    const api = file('conv.json', prompt());
    const toEditor = cli(['convert', api], dir);
    expect(toEditor.code, toEditor.stderr).toBe(0);
    const editor = JSON.parse(toEditor.stdout);
    expect(editor.nodes).toHaveLength(7);
    const editorFile = join(dir, 'conv-editor.json');
    writeFileSync(editorFile, toEditor.stdout);
    const back = cli(['convert', editorFile], dir);
    expect(back.code, back.stderr).toBe(0);
    const again = JSON.parse(back.stdout);
    expect(again['3'].class_type).toBe('KSampler');
    expect(again['3'].inputs.steps).toBe(1);
    expect(cli(['convert', api, '--to', 'yaml'], dir).code).toBe(2);
  });

  it('serve starts the server and editor on the requested port and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--no-browser', '--no-demo', '--data-dir', dir], { cwd: dir, env: { ...process.env, CI: '1' } });
    try {
      const url = await new Promise<string>((resolveUrl, reject) => {
        let text = '';
        const timer = setTimeout(() => reject(new Error(`no URL printed: ${text}`)), 90_000);
        child.stdout.on('data', (b: Buffer) => {
          text += b.toString();
          const m = /ResFlow editor: (http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
          if (m) {
            clearTimeout(timer);
            resolveUrl(m[1]!);
          }
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${text}`)));
      });
      const info = (await (await fetch(`${url}/object_info/KSampler`)).json()) as Record<string, { name: string }>;
      expect(info.KSampler!.name).toBe('KSampler');
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<canvas id="graph"/);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }, 120_000);
});
