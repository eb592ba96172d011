import { Mt19937, normalizeSeed, type Seed } from './torch-rng.js';

/**
 * torch.randint(0, n) on the global CPU generator as it stands after KSampler's prepare_noise:
 * `torch.manual_seed(seed); torch.randn(latent)` consumed `numel` mt19937 outputs (16 more when numel is not
 * a multiple of 16: the vectorised normal kernel's tail), and each randint of a small range then takes the
 * next 32-bit output modulo n. This is what HyperTile's tile choices draw from.
 */
export function globalTorchRandint(seed: Seed, latentNumel: number): (n: number) => number {
  const mt = new Mt19937(Number(normalizeSeed(seed) & 0xffffffffn));
  const skip = latentNumel + (latentNumel % 16 !== 0 ? 16 : 0);
  for (let i = 0; i < skip; i++) mt.nextU32();
  return (n: number) => {
    if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`randint range must be a positive integer, got ${n}`);
    return mt.nextU32() % n;
  };
}
