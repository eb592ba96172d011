/** ComfyUI users read types by colour; the common ones keep the colours they know. */
const KNOWN: Record<string, string> = {
  MODEL: '#b39ddb',
  CLIP: '#ffd500',
  VAE: '#ff6e6e',
  CONDITIONING: '#ffa931',
  LATENT: '#ff9cf9',
  IMAGE: '#64b5f6',
  MASK: '#81c784',
  CONTROL_NET: '#00d78d',
  RESADAPTER: '#4dd0e1',
  LORA: '#f06292',
  INT: '#29b6f6',
  FLOAT: '#aed581',
  STRING: '#90a4ae',
  BOOLEAN: '#ce93d8',
};

/** A stable colour for any type name, so custom types are told apart too. */
export function typeColor(type: string): string {
  const known = KNOWN[type.toUpperCase()];
  if (known) return known;
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360}, 60%, 65%)`;
}
