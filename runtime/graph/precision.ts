import { z } from 'zod';
import type { ModelRole } from './devices.js';
import { PRECISIONS, type Precision } from './lower-int8.js';

/**
 * The process-wide default precision of the models a session serves: from the CLI (`--precision`), the
 * config file or RESFLOW_PRECISION. It applies to the UNet (and ControlNet) and the VAE; text encoders and
 * training graphs always run fp32. A loader node's own `weight_dtype` choice overrides it per model.
 */

export { PRECISIONS, type Precision };
export const precisionSchema = z.enum(PRECISIONS);

/** Roles the default precision applies to. */
const QUANTISABLE: ReadonlySet<ModelRole> = new Set(['unet', 'controlnet', 'vae']);

let current: Precision = precisionSchema.safeParse(process.env.RESFLOW_PRECISION).data ?? 'fp32';

export function setDefaultPrecision(p: Precision): void {
  current = p;
}

export function defaultPrecision(): Precision {
  return current;
}

export function precisionFor(role: ModelRole | undefined): Precision {
  return role && QUANTISABLE.has(role) ? current : 'fp32';
}
