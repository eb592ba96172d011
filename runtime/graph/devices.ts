import * as ort from 'onnxruntime-node';
import { z } from 'zod';

/**
 * Where sessions run. `cpu` is ONNX Runtime's CPU provider; the others are the accelerators onnxruntime-node
 * can load (WebGPU on every platform, DirectML on Windows, CoreML on macOS, CUDA where its libraries are
 * installed); `auto` tries the ones that suit the platform, best first. A provider that is missing or fails
 * to start never stops a render: the session falls back to the CPU with one warning naming the reason.
 */

export const DEVICES = ['auto', 'cpu', 'webgpu', 'cuda', 'dml', 'coreml'] as const;
export type Device = (typeof DEVICES)[number];
export const deviceSchema = z.enum(DEVICES);

/** Which part of a pipeline a session belongs to, for per-model overrides such as `{ "vae": "cpu" }`. */
export const MODEL_ROLES = ['unet', 'vae', 'text_encoder', 'controlnet', 'upscale', 'training'] as const;
export type ModelRole = (typeof MODEL_ROLES)[number];

export interface DevicePolicy {
  device: Device;
  overrides: Partial<Record<ModelRole, Device>>;
}

export const devicePolicySchema = z
  .object({ device: deviceSchema.default('cpu'), overrides: z.partialRecord(z.enum(MODEL_ROLES), deviceSchema).default({}) })
  .strict();

function initialPolicy(): DevicePolicy {
  const fromEnv = deviceSchema.safeParse(process.env.RESFLOW_DEVICE);
  return { device: fromEnv.success ? fromEnv.data : 'cpu', overrides: {} };
}

let policy: DevicePolicy = initialPolicy();
let warn: (message: string) => void = (m) => console.warn(m);

/** Set once at start-up from the CLI flag, the server flag or the config file. */
export function setDevicePolicy(next: Partial<DevicePolicy>, log?: (message: string) => void): void {
  policy = { device: next.device ?? policy.device, overrides: next.overrides ?? policy.overrides };
  if (log) warn = log;
}

export function devicePolicy(): Readonly<DevicePolicy> {
  return policy;
}

export function deviceFor(role: ModelRole | undefined): Device {
  return (role && policy.overrides[role]) || policy.device;
}

/** Execution providers to try for a device, best first; the CPU is always the last resort. */
export function providersFor(device: Device, platform: NodeJS.Platform = process.platform): string[] {
  if (device === 'cpu') return [];
  if (device !== 'auto') return [device];
  if (platform === 'win32') return ['dml', 'cuda', 'webgpu'];
  if (platform === 'darwin') return ['coreml', 'webgpu'];
  return ['cuda', 'webgpu'];
}

/**
 * Graphs for anything but the CPU are lowered with standard ONNX ops only: the com.microsoft fusions we use on
 * the CPU (MultiHeadAttention, QuickGelu, Gelu) are not implemented by every other provider.
 */
export function portableLowering(device: Device): boolean {
  return device !== 'cpu';
}

const failed = new Map<string, string>();

export interface DeviceSession {
  session: ort.InferenceSession;
  /** The provider the session was created with ('cpu' after a fallback). */
  provider: string;
}

type Creator = (options: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;

/** Creates a session on the device's providers in turn, falling back to the CPU with a warning. */
export async function createOnDevice(create: Creator, base: ort.InferenceSession.SessionOptions, device: Device): Promise<DeviceSession> {
  for (const provider of providersFor(device)) {
    if (failed.has(provider)) continue;
    try {
      return { session: await create({ ...base, executionProviders: [provider, 'cpu'] }), provider };
    } catch (e) {
      const reason = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
      failed.set(provider, reason);
      warn(`resflow: execution provider "${provider}" is not available (${reason}); running on the CPU instead`);
    }
  }
  return { session: await create({ ...base, executionProviders: ['cpu'] }), provider: 'cpu' };
}

/** Providers that failed in this process, with their reasons (for `resflow doctor`-style reports and tests). */
export function failedProviders(): ReadonlyMap<string, string> {
  return failed;
}

/** Forgets failures, so a test can check the fallback again. */
export function resetProviderFailures(): void {
  failed.clear();
}
