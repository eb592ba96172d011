import { UpscaleModel } from '../../models/upscale/rrdb.js';
import { upscaleImage } from '../../models/upscale/tiled-upscale.js';
import type { CaseKind } from './types.js';

/** upscale-model: both RRDBNet key layouts, raw forward, the node's output untiled, with tile 8 / overlap 2, and at 512/32. */
export const upscaleModelKind: CaseKind = {
  name: 'upscale-model',
  matches: (c) => c.name === 'upscale-model',
  async run(c) {
    const image = c.input('image');
    const [b, h, w, ch] = image.dims as [number, number, number, number];
    const nchw = new Float32Array(image.data.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < ch; k++) nchw[(k * h + y) * w + x] = Number(image.data[(y * w + x) * ch + k]);
    const [small] = c.json.params.small_tile as [number, number];
    const smallOverlap = (c.json.params.small_tile as number[])[1]!;
    for (const [name, m] of Object.entries(c.json.models as Record<string, { file: string; spandrel: { scale: number } }>)) {
      const model = UpscaleModel.load(c.modelPath(m.file));
      if (model.scale !== m.spandrel.scale) throw new Error(`${name}: detected scale ${model.scale}, spandrel says ${m.spandrel.scale}`);
      const fwd = await model.forward(nchw, [b, ch, h, w]);
      c.check(`${name}/model_output`, fwd.data);
      const img = { data: image.data as Float32Array, shape: image.dims };
      c.check(`${name}/upscaled`, (await upscaleImage(model, img)).data);
      c.check(`${name}/tiled_8_overlap_2`, (await upscaleImage(model, img, small, smallOverlap)).data);
      if (c.hasExpected(`${name}/tiled_image_upscaled`)) {
        const t = c.input('tiled_image');
        c.check(`${name}/tiled_image_upscaled`, (await upscaleImage(model, { data: t.data as Float32Array, shape: t.dims }, c.json.params.node_tile, c.json.params.node_overlap)).data);
      }
    }
  },
};
