/**
 * LoRA products up@down on ONNX Runtime's float32 GEMM. A LoRA on every layer of a full model (LCM-LoRA: rank 64
 * on all 860M SD1.5 UNet weights) is ~55 GFLOP of products: about a minute in a JavaScript loop, well under a
 * second on ORT's threads. The product is float32 as ComfyUI's torch.mm computes it (the JS loop accumulates in
 * double, which is why small patches, where the ORT call costs more than the work, stay there).
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, OnnxType } from '../onnx/model.js';
import type { LoraPatch } from '../adapters/lora-format.js';

/** Multiply-adds above which a product goes to ORT (about 10 ms of the JS loop). */
export const ORT_PRODUCT_MIN_MACS = 1 << 24;

let session: Promise<ort.InferenceSession> | undefined;

function matmulSession(): Promise<ort.InferenceSession> {
  session ??= ort.InferenceSession.create(
    encodeModel({
      opset: 17,
      graph: {
        name: 'lora_product',
        nodes: [{ opType: 'MatMul', inputs: ['up', 'down'], outputs: ['product'] }],
        inputs: [
          { name: 'up', elemType: OnnxType.FLOAT, shape: ['out', 'rank'] },
          { name: 'down', elemType: OnnxType.FLOAT, shape: ['rank', 'inner'] },
        ],
        outputs: [{ name: 'product', elemType: OnnxType.FLOAT, shape: ['out', 'inner'] }],
        initializers: [],
      },
    }),
    { graphOptimizationLevel: 'all' },
  );
  return session;
}

/** Whether `patch` is worth an ORT call: plain up/down (no LoCon mid), large enough. */
export function wantsOrtProduct(patch: LoraPatch): boolean {
  if (patch.mid) return false;
  const out = patch.upShape[0]!;
  const inner = patch.down.length / patch.rank;
  return out * inner * patch.rank >= ORT_PRODUCT_MIN_MACS;
}

/** up [out, rank] @ down [rank, inner], float32. */
export async function ortLoraProduct(patch: LoraPatch): Promise<Float32Array> {
  const out = patch.upShape[0]!;
  const inner = patch.down.length / patch.rank;
  const s = await matmulSession();
  const r = await s.run({
    up: new ort.Tensor('float32', patch.up, [out, patch.rank]),
    down: new ort.Tensor('float32', patch.down, [patch.rank, inner]),
  });
  return r.product!.data as Float32Array;
}
