/**
 * Float32 helpers for reproducing torch's scalar math. ComfyUI builds sigma schedules with float32
 * tensors; doing the same arithmetic in float64 drifts by a few ulps, which is inside tolerance, but
 * rounding at the same points keeps schedules bit-close to the recorded ones and makes tests strict.
 */

export const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps) in float32 (CPU). torch fills the first half forward from `start`
 * and the second half backward from `end`, so both endpoints are exact.
 */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < half ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  }
  return out;
}

/** torch.linspace in float64, same forward/backward split. */
export function linspaceF64(start: number, end: number, steps: number): Float64Array {
  const out = new Float64Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (steps - 1);
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? start + step * i : end - step * (steps - i - 1);
  return out;
}
