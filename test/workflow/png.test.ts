import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { embedWorkflowInPng, PngError, readPngChunks, readPngText, readWorkflowFromPng } from '../../runtime/workflow/png.js';
import { editorWorkflowSchema } from '../../runtime/workflow/editor-schema.js';
import { sampleEditorWorkflow } from './fixtures.js';

async function makePng(): Promise<Buffer> {
  return sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 200, g: 30, b: 10 } } })
    .png()
    .toBuffer();
}

function rawChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Inserts a chunk right before IEND (the last 12 bytes of a PNG). */
function insertBeforeIend(png: Buffer, chunk: Buffer): Buffer {
  return Buffer.concat([png.subarray(0, png.length - 12), chunk, png.subarray(png.length - 12)]);
}

const prompt = {
  '3': { class_type: 'Noise', inputs: { seed: 5, steps: 20, denoise: 1, sampler: 'euler', enabled: true }, _meta: { title: '猫 noise' } },
  '4': { class_type: 'Sink', inputs: { value: ['3', 0] } },
};

describe('PNG workflow chunks', () => {
  it('embeds prompt and workflow as tEXt before IEND and reads them back', async () => {
    const png = await makePng();
    const workflow = editorWorkflowSchema.parse(sampleEditorWorkflow());
    const out = embedWorkflowInPng(png, { prompt, workflow });

    const chunks = readPngChunks(out).map((c) => c.type);
    expect(chunks.slice(-3)).toEqual(['tEXt', 'tEXt', 'IEND']);
    const text = readPngText(out);
    expect(text.map((t) => [t.keyword, t.chunk])).toEqual([
      ['prompt', 'tEXt'],
      ['workflow', 'tEXt'],
    ]);
    // Non-Latin-1 characters are escaped, so tEXt stays Latin-1 and the JSON is unchanged.
    expect(text[0].text).toContain('\\u732b');

    const read = readWorkflowFromPng(out);
    expect(read.errors).toEqual([]);
    expect(read.prompt).toEqual(prompt);
    expect(read.workflow).toEqual(workflow);

    // Still a valid image with the same pixels.
    const [before, after] = await Promise.all([sharp(png).raw().toBuffer(), sharp(out).raw().toBuffer()]);
    expect(after.equals(before)).toBe(true);
  });

  it('replaces earlier copies instead of stacking them', async () => {
    const once = embedWorkflowInPng(await makePng(), { prompt: { old: true }, workflow: { old: true } });
    const twice = embedWorkflowInPng(once, { prompt });
    expect(readPngText(twice).map((t) => t.keyword)).toEqual(['workflow', 'prompt']);
    expect(readWorkflowFromPng(twice).prompt).toEqual(prompt);
  });

  it('reads iTXt (plain and compressed) and zTXt chunks', async () => {
    const png = await makePng();
    const json = JSON.stringify(prompt);
    const itxt = rawChunk('iTXt', Buffer.concat([Buffer.from('prompt\0\0\0en\0\0', 'latin1'), Buffer.from(json, 'utf8')]));
    expect(readWorkflowFromPng(insertBeforeIend(png, itxt)).prompt).toEqual(prompt);

    const compressed = rawChunk('iTXt', Buffer.concat([Buffer.from('prompt\0\x01\0\0\0', 'latin1'), deflateSync(Buffer.from(json, 'utf8'))]));
    expect(readWorkflowFromPng(insertBeforeIend(png, compressed)).prompt).toEqual(prompt);

    const ztxt = rawChunk('zTXt', Buffer.concat([Buffer.from('prompt\0\0', 'latin1'), deflateSync(Buffer.from(json, 'utf8'))]));
    expect(readWorkflowFromPng(insertBeforeIend(png, ztxt)).prompt).toEqual(prompt);
  });

  it('reports unparsable chunks without hiding the other one', async () => {
    const png = insertBeforeIend(await makePng(), rawChunk('tEXt', Buffer.from('workflow\0{"nodes": 3}', 'latin1')));
    const withPrompt = embedWorkflowInPng(png, { prompt });
    const read = readWorkflowFromPng(withPrompt);
    expect(read.prompt).toEqual(prompt);
    expect(read.workflow).toBeUndefined();
    expect(read.errors[0].keyword).toBe('workflow');
    expect(read.errors[0].issues.map((i) => i.path)).toContain('$.nodes');
    expect(readWorkflowFromPng(await makePng())).toEqual({ errors: [] });
  });

  it('refuses non-PNG data and corrupt chunks', async () => {
    expect(() => readPngChunks(Buffer.from('GIF89a....'))).toThrow(PngError);
    const png = embedWorkflowInPng(await makePng(), { prompt });
    const corrupt = Buffer.from(png);
    corrupt[corrupt.length - 20] ^= 0xff; // inside the last tEXt chunk
    expect(() => readPngChunks(corrupt)).toThrow(/bad CRC/);
    expect(() => readPngChunks(png.subarray(0, png.length - 12))).toThrow(/IEND/);
  });
});
