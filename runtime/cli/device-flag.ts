import { loadConfig } from '../config/model-folders.js';
import { DEVICES, deviceSchema, setDevicePolicy, type Device } from '../graph/devices.js';
import { CliUsageError } from './workflow-io.js';

/**
 * `--device` works on every command (run, serve, worker, conformance...), so it is taken off the arguments
 * before the command parses them. The config file's `device` / `deviceOverrides` apply first; the flag wins.
 */
export function takeDeviceFlag(argv: readonly string[]): { argv: string[]; device?: Device } {
  const rest: string[] = [];
  let device: Device | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let value: string | undefined;
    if (a === '--device') value = argv[++i];
    else if (a.startsWith('--device=')) value = a.slice('--device='.length);
    else {
      rest.push(a);
      continue;
    }
    const parsed = deviceSchema.safeParse(value);
    if (!parsed.success) throw new CliUsageError(`--device must be one of ${DEVICES.join(', ')}; got "${value ?? ''}"`);
    device = parsed.data;
  }
  return device === undefined ? { argv: rest } : { argv: rest, device };
}

let flagged: Device | undefined;

export function applyDeviceSettings(dataDir: string, flag: Device | undefined): void {
  // `resflow serve --device x` reaches the server's own start-up after the CLI took the flag: it still wins.
  flag = flag ?? flagged;
  flagged = flag;
  const config = loadConfig(dataDir);
  setDevicePolicy({
    ...(config.device ? { device: config.device } : {}),
    ...(config.deviceOverrides ? { overrides: config.deviceOverrides } : {}),
  });
  if (flag) setDevicePolicy({ device: flag });
}
