import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_ARCH, DEMO_UNET } from '../../runtime/models/synthetic/demo.js';
import { writeSyntheticCheckpoint } from '../../runtime/models/synthetic/generate.js';
import { sd1CheckpointKeyShapes, type Sd1Arch } from '../../runtime/models/synthetic/tables.js';
import { SafetensorsFile } from '../../runtime/safetensors/reader.js';
import { TorchCheckpointError } from '../../runtime/torchfile/torch-checkpoint.js';
import { ForbiddenGlobalError, unpickle } from '../../runtime/torchfile/unpickle.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { REPO } from '../nodes/helpers.js';
import { sharedPathUnchecked } from '../shared-data.js';

/**
 * PyTorch zip checkpoints written by Python's own pickle module (scripts/fixtures/torch_zip.py mirrors what
 * torch.save writes), read by our restricted unpickler, compared tensor for tensor with the safetensors twin.
 */

const SCRIPT = join(REPO, 'scripts/fixtures/torch_zip.py');
const TWIN = sharedPathUnchecked('conformance', 'models', 'tiny-sd15-a.safetensors');

function python(...args: string[]): void {
  execFileSync('python3', [SCRIPT, ...args], { stdio: 'pipe' });
}

let dir: string;
beforeAll(() => {
  if (!existsSync(TWIN)) throw new Error(`conformance data missing: ${TWIN}`);
  dir = mkdtempSync(join(tmpdir(), 'resflow-ckpt-'));
});

function expectSameTensors(ckptPath: string) {
  const a = SafetensorsFile.open(TWIN);
  const b = SafetensorsFile.open(ckptPath);
  expect(b.keys().sort()).toEqual(a.keys().sort());
  for (const key of a.keys()) {
    const ta = a.info(key);
    const tb = b.info(key);
    expect({ dtype: tb.dtype, shape: tb.shape }, key).toEqual({ dtype: ta.dtype, shape: ta.shape });
    expect(Buffer.from(b.readBytes(key)).equals(Buffer.from(a.readBytes(key))), key).toBe(true);
  }
}

describe('PyTorch zip checkpoints', () => {
  it('a Lightning-layout .ckpt loads to the same tensors as its .safetensors twin', () => {
    const out = join(dir, 'tiny-wrapped.ckpt');
    python('convert', TWIN, out, '--wrap');
    expectSameTensors(out);
  });

  it('tensors that share a storage at an offset read their own slice', () => {
    const out = join(dir, 'tiny-shared.pt');
    python('convert', TWIN, out, '--shared');
    expectSameTensors(out);
  });

  for (const kind of ['os.system', 'eval', 'exec', 'getattr']) {
    it(`refuses a pickle that calls ${kind}, without running it`, () => {
      const marker = join(dir, `ran-${kind}`);
      const out = join(dir, `evil-${kind}.ckpt`);
      python('evil', out, kind, marker);
      let error: unknown;
      try {
        SafetensorsFile.open(out);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TorchCheckpointError);
      const message = (error as Error).message;
      expect(message).toContain(out);
      expect(message).toMatch(/refused to load: its pickle asks for "(posix|nt|builtins|__builtin__)\.(system|eval|exec|getattr)"/);
      expect(existsSync(marker)).toBe(false);
    });
  }

  it('refuses hand-made pickles for any global outside the allow-list', () => {
    const proto2 = (body: string) => Uint8Array.from(Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from(body, 'latin1'), Buffer.from('.')]));
    const resolveGlobal = () => undefined;
    for (const global of ['os\nsystem', 'subprocess\nPopen', 'builtins\n__import__', 'torch\nload']) {
      const pkl = proto2(`c${global}\nX\x02\x00\x00\x00ls\x85R`);
      expect(() => unpickle(pkl, { resolveGlobal })).toThrow(ForbiddenGlobalError);
    }
  });

  it('names the file for a truncated archive', () => {
    const src = join(dir, 'tiny-wrapped.ckpt');
    const cut = join(dir, 'cut.ckpt');
    writeFileSync(cut, readFileSync(src).subarray(0, 4096));
    expect(() => SafetensorsFile.open(cut)).toThrow(/cut\.ckpt: .*(truncated|end-of-central-directory)/);
  });

  it('a .ckpt in models/checkpoints is listed and renders exactly like its twin, with the bundled CLIP vocabulary', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-ckpt-data-'));
    const env = createRuntimeEnv({ dataDir });
    const ckdir = join(env.folders.modelsDir, 'checkpoints');
    mkdirSync(ckdir, { recursive: true });
    // Widths whose head counts follow the real models' conventions, and CLIP's full vocabulary, so the file
    // needs nothing beside it: no metadata, no tokenizer folder.
    const arch: Sd1Arch = { unet: { ...DEMO_UNET, modelChannels: 64, contextDim: 64 }, vae: DEMO_ARCH.vae, clip: { hidden: 64, layers: 1, intermediate: 128, vocab: 49408, positions: 77 } };
    writeSyntheticCheckpoint(join(ckdir, 'tiny.safetensors'), sd1CheckpointKeyShapes(arch), { seed: 7 });
    python('convert', join(ckdir, 'tiny.safetensors'), join(ckdir, 'tiny.ckpt'), '--wrap');
    const registry = createCoreRegistry(env);
    const info = await registry.nodeInfo('CheckpointLoaderSimple');
    expect(JSON.stringify(info.input)).toContain('tiny.ckpt');

    const render = async (ckpt: string) => {
      const prompt: ApiPrompt = {
        '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
        '2': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: 'a photo of a cat' } },
        '3': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: '' } },
        '4': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
        '5': { class_type: 'KSampler', inputs: { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], seed: 3, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
        '6': { class_type: 'VAEDecode', inputs: { samples: ['5', 0], vae: ['1', 2] } },
        '7': { class_type: 'PreviewImage', inputs: { images: ['6', 0] } },
      };
      const v = await validatePrompt(prompt, registry);
      if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
      const result = await new Executor().run(v.graph);
      if (result.status !== 'success') throw new Error(JSON.stringify(result.error));
      const [image] = result.outputs['7']!.images as Array<{ filename: string; subfolder: string }>;
      return readFileSync(join(env.tempDir, image!.subfolder, image!.filename));
    };
    const fromCkpt = await render('tiny.ckpt');
    const fromSafetensors = await render('tiny.safetensors');
    expect(fromCkpt.equals(fromSafetensors)).toBe(true);
  });
});
