const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** tEXt is nominally Latin-1 but many writers put UTF-8 there (see runtime/workflow/png.ts). */
function looseText(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return latin1(bytes);
  }
}

/**
 * The text chunks of a PNG by keyword (first occurrence wins), in the browser: the editor reads
 * ComfyUI's `workflow` and `prompt` chunks from dropped images. CRCs are not checked here; the JSON is
 * validated afterwards, which is what matters for a dropped file.
 */
export async function readPngTextChunks(buffer: ArrayBuffer): Promise<Map<string, string>> {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error('not a PNG file');
  const view = new DataView(buffer);
  const out = new Map<string, string>();
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1(bytes.subarray(offset + 4, offset + 8));
    const start = offset + 8;
    const end = start + length;
    if (end + 4 > bytes.length) throw new Error(`PNG chunk ${type} runs past the end of the file`);
    const data = bytes.subarray(start, end);
    if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
      const nul = data.indexOf(0);
      if (nul > 0) {
        const keyword = latin1(data.subarray(0, nul));
        try {
          let text: string | undefined;
          if (type === 'tEXt') text = looseText(data.subarray(nul + 1));
          else if (type === 'zTXt') text = looseText(await inflate(data.subarray(nul + 2)));
          else {
            const compressed = data[nul + 1] === 1;
            const langEnd = data.indexOf(0, nul + 3);
            const transEnd = langEnd < 0 ? -1 : data.indexOf(0, langEnd + 1);
            if (transEnd >= 0) {
              const body = data.subarray(transEnd + 1);
              text = new TextDecoder().decode(compressed ? await inflate(body) : body);
            }
          }
          if (text !== undefined && !out.has(keyword)) out.set(keyword, text);
        } catch {
          // one corrupt compressed chunk must not hide the others
        }
      }
    }
    if (type === 'IEND') break;
    offset = end + 4;
  }
  return out;
}
