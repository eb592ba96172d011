import { loadConfig } from '../config/model-folders.js';
import { DEVICES, deviceSchema, setDevicePolicy, type Device } from '../graph/devices.js';
import { takeGlobalFlag } from './global-flag.js';

/**
 * `--device` works on every command (run, serve, worker, conformance...), so it is taken off the arguments
 * before the command parses them. The config file's `device` / `deviceOverrides` apply first; the flag wins.
 */
export function takeDeviceFlag(argv: readonly string[]): { argv: string[]; device?: Device } {
  const r = takeGlobalFlag(argv, 'device', deviceSchema, DEVICES);
  return r.value === undefined ? { argv: r.argv } : { argv: r.argv, device: r.value };
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
