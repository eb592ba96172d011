/**
 * The Shapes model's tokenizer: CLIP's byte-level vocab (as the demo model's) plus BPE merges that make
 * every caption word one token, so a small frozen text encoder hands the UNet one vector per word rather
 * than per letter. Written as an ordinary vocab.json + merges.txt pair, which ClipTokenizer reads.
 */
import { demoVocab } from '../models/synthetic/demo.js';

/**
 * Every word a Shapes caption uses, in merge-priority order: BPE applies the lowest-ranked pair first, so
 * e.g. green's `g r` must rank before red's `r e`, and background's chain before green's `g r` (a test
 * checks that each word ends as one token).
 */
export const SHAPES_WORDS = ['background', 'green', 'square', 'on', 'yellow', 'triangle', 'red', 'circle', 'a', 'white', 'blue', 'black'] as const;

export interface ShapesTokenizerFiles {
  vocab: Record<string, number>;
  merges: string[];
}

/** Merges build each word left to right, (prefix, next letter), the last letter carrying `</w>`, word by word. */
export function shapesTokenizerFiles(): ShapesTokenizerFiles {
  const base = demoVocab();
  const start = base['<|startoftext|>']!;
  const end = base['<|endoftext|>']!;
  delete base['<|startoftext|>'];
  delete base['<|endoftext|>'];
  const vocab: Record<string, number> = { ...base };
  let next = Math.min(start, end) - 1;
  const merges: string[] = [];
  for (const word of SHAPES_WORDS) {
    for (let len = 2; len <= word.length; len++) {
      const prefix = word.slice(0, len - 1);
      const last = len === word.length;
      const right = `${word[len - 1]}${last ? '</w>' : ''}`;
      const merged = `${prefix}${right}`;
      const line = `${prefix} ${right}`;
      if (merges.includes(line)) continue;
      merges.push(line);
      if (!(merged in vocab)) vocab[merged] = ++next;
    }
  }
  vocab['<|startoftext|>'] = ++next;
  vocab['<|endoftext|>'] = ++next;
  return { vocab, merges };
}

export function shapesMergesText(files: ShapesTokenizerFiles): string {
  return `#version: 0.2\n${files.merges.join('\n')}\n`;
}
