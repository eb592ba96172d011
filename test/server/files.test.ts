import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, pngBytes, startTestServer, type TestServer } from './helpers.js';

let t: TestServer;
let png: Buffer;
beforeAll(async () => {
  t = await startTestServer({ maxUploadBytes: 64 * 1024 });
  png = await pngBytes(4, 4);
  writeFileSync(join(t.env.outputDir, 'out.png'), png);
  mkdirSync(join(t.env.outputDir, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(t.env.outputDir, 'sub', 'deeper', 'b.png'), png);
  writeFileSync(join(t.env.inputDir, 'in.png'), png);
  writeFileSync(join(t.env.tempDir, 'page.html'), '<script>alert(1)</script>');
  writeFileSync(join(t.dir, 'secret.txt'), 'top secret');
  symlinkSync(join(t.dir, 'secret.txt'), join(t.env.outputDir, 'link.png'));
  symlinkSync(t.dir, join(t.env.outputDir, 'escape'));
});
afterAll(async () => {
  await t.close();
});

function upload(fields: Record<string, string>, file?: { name: string; data: Buffer; type?: string }, path = '/upload/image') {
  const form = new FormData();
  if (file) form.append('image', new Blob([new Uint8Array(file.data)], { type: file.type ?? 'image/png' }), file.name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return getJson(`${t.url}${path}`, { method: 'POST', body: form });
}

/** Raw request so paths reach the server exactly as written (fetch would normalise `..`). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.url}${path}`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /view', () => {
  it('serves output, input and temp files with the right content type', async () => {
    const res = await fetch(`${t.url}/view?filename=out.png&type=output`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);
    expect((await fetch(`${t.url}/api/view?filename=b.png&subfolder=sub/deeper`)).status).toBe(200);
    expect((await fetch(`${t.url}/view?filename=in.png&type=input`)).headers.get('content-type')).toBe('image/png');
  });

  it('serves unknown types as downloads, never as HTML', async () => {
    const res = await fetch(`${t.url}/view?filename=page.html&type=temp`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('rejects traversal in filename and subfolder, plain and encoded', async () => {
    const attempts = [
      '/view?filename=../secret.txt',
      '/view?filename=..%2Fsecret.txt',
      '/view?filename=secret.txt&subfolder=..',
      '/view?filename=secret.txt&subfolder=sub/../..',
      '/view?filename=secret.txt&subfolder=%2e%2e',
      '/view?filename=secret.txt&subfolder=%252e%252e',
      '/view?filename=%252e%252e%252fsecret.txt',
      '/view?filename=secret.txt&subfolder=..%5C..',
      `/view?filename=secret.txt&subfolder=${encodeURIComponent(t.dir)}`,
      '/view?filename=/etc/passwd',
      '/view?filename=passwd&subfolder=/etc',
      '/view?filename=C:%5Cwindows%5Cwin.ini',
      '/view?filename=out.png%00.txt',
    ];
    for (const path of attempts) {
      const res = await rawGet(path);
      expect([400, 403], path).toContain(res.status);
      expect(res.body).not.toContain('top secret');
      expect(JSON.parse(res.body).error.message, path).toBeTruthy();
    }
  });

  it('refuses symlinks that point outside the folder', async () => {
    const file = await rawGet('/view?filename=link.png');
    expect(file.status).toBe(403);
    expect(file.body).not.toContain('top secret');
    const dir = await rawGet('/view?filename=secret.txt&subfolder=escape');
    expect(dir.status).toBe(403);
  });

  it('rejects a bad type, a missing filename, and 404s missing files', async () => {
    const badType = await getJson(`${t.url}/view?filename=out.png&type=models`);
    expect(badType.status).toBe(400);
    expect(badType.body.error.details).toMatch(/type must be output, input or temp/);
    expect((await getJson(`${t.url}/view`)).status).toBe(400);
    expect((await getJson(`${t.url}/view?filename=nothing.png`)).status).toBe(404);
    expect((await getJson(`${t.url}/view?filename=sub&type=output`)).status).toBe(404);
  });
});

describe('POST /upload/image', () => {
  it('stores an image in input and returns ComfyUI\'s {name, subfolder, type}', async () => {
    const res = await upload({}, { name: 'photo.png', data: png });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'photo.png', subfolder: '', type: 'input' });
    expect(readFileSync(join(t.env.inputDir, 'photo.png')).equals(png)).toBe(true);
    // LoadImage lists it right away.
    const info = (await getJson(`${t.url}/object_info/LoadImage`)).body;
    expect(info.LoadImage.input.required.image[0]).toContain('photo.png');
  });

  it('renames instead of overwriting unless asked, and honours subfolder and type', async () => {
    const again = await upload({}, { name: 'photo.png', data: png });
    expect(again.body.name).toBe('photo (1).png');
    const over = await upload({ overwrite: 'true' }, { name: 'photo.png', data: png });
    expect(over.body.name).toBe('photo.png');
    const sub = await upload({ subfolder: 'masks/a', type: 'temp' }, { name: 'm.png', data: png });
    expect(sub.body).toEqual({ name: 'm.png', subfolder: 'masks/a', type: 'temp' });
    expect((await fetch(`${t.url}/view?filename=m.png&subfolder=masks/a&type=temp`)).status).toBe(200);
  });

  it('strips directories from the client file name and fixes the extension from the content', async () => {
    const res = await upload({}, { name: '../../evil.txt', data: png });
    expect(res.status).toBe(200);
    expect(res.body.name).toBe('evil.txt.png');
    const jpeg = await upload({}, { name: 'pic.png', data: readFileSync(join(t.env.inputDir, 'in.png')) });
    expect(jpeg.body.name).toBe('pic.png');
  });

  it('rejects non-image content whatever its name or declared type', async () => {
    const res = await upload({}, { name: 'fake.png', data: Buffer.from('just some text, not a picture'), type: 'image/png' });
    expect(res.status).toBe(415);
    expect(res.body.error.message).toMatch(/not an image/);
  });

  it('rejects a truncated image that only looks like one', async () => {
    const big = await pngBytes(64, 64);
    const res = await upload({}, { name: 'cut.png', data: big.subarray(0, big.length - 40) });
    expect(res.status).toBe(415);
    expect(res.body.error.message).toMatch(/could not be decoded/);
  });

  it('rejects oversize uploads with 413 and keeps serving', async () => {
    const huge = Buffer.concat([png, Buffer.alloc(200 * 1024)]);
    const res = await upload({}, { name: 'huge.png', data: huge });
    expect(res.status).toBe(413);
    expect(res.body.error.message).toBe('The upload is larger than the limit of 64 KB');
    const bigger = await upload({}, { name: 'huge.png', data: Buffer.alloc(4 * 1024 * 1024) });
    expect(bigger.status).toBe(413);
    expect((await getJson(`${t.url}/system_stats`)).status).toBe(200);
    expect((await getJson(`${t.url}/object_info/LoadImage`)).body.LoadImage.input.required.image[0]).not.toContain('huge.png');
  });

  it('rejects bad forms: no image, wrong content type, traversal in subfolder, bad type', async () => {
    expect((await upload({ subfolder: 'x' })).body.error.type).toBe('missing_image');
    const json = await getJson(`${t.url}/upload/image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(400);
    expect(json.body.error.message).toMatch(/multipart\/form-data/);
    const trav = await upload({ subfolder: '../../outside' }, { name: 'x.png', data: png });
    expect(trav.status).toBe(400);
    const abs = await upload({ subfolder: '/tmp' }, { name: 'x.png', data: png });
    expect(abs.status).toBe(400);
    const viaLink = await upload({ subfolder: 'escape', type: 'output' }, { name: 'x.png', data: png });
    expect(viaLink.status).toBe(403);
    const type = await upload({ type: 'models' }, { name: 'x.png', data: png });
    expect(type.status).toBe(400);
    const garbage = await getJson(`${t.url}/upload/image`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: 'garbage' });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.type).toBe('invalid_multipart');
  });
});
