import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { createRuntimeEnv } from '../nodes-api/env.js';
import { createNodeRegistry } from '../nodes-api/node-set.js';
import { ensureDemoModels } from '../models/synthetic/demo.js';
import type { RedisOptions } from 'ioredis';
import { applyDeviceSettings, takeDeviceFlag } from '../cli/device-flag.js';
import { checkRedis, redisOptions } from '../farm/redis.js';
import { ensureShapesModel } from '../shapes/provision.js';
import { TOKEN_ENV } from './security.js';
import { startServer } from './server.js';

const HELP = `usage: resflow serve [options]   (or: npm start -- [options])

Starts the ResFlow server and editor (ComfyUI-compatible API).

  --host <addr>       listen address (default 127.0.0.1; anything else exposes the API to the network)
  --port <n>          port (default 8188, 0 = any free port)
  --token <t>         access token clients must present (default: $RESFLOW_TOKEN; a random one is made and
                      printed when --host is not loopback; loopback needs none unless one is given)
  --data-dir <dir>    folder with models/, input/, output/, temp/ (default: $RESFLOW_DATA_DIR or the current folder)
  --models <dir>      extra models root (repeatable)
  --no-browser        do not open the editor in a browser
  --no-demo           do not write the tiny demo model into <data-dir>/models
  --redis <url>       farm mode: queue prompts in Redis for \`resflow worker\` processes instead of running them here
  --farm-prefix <n>   farm name, when several farms share one Redis (default resflow)
  --device <d>        cpu, webgpu, cuda, dml, coreml or auto (default cpu)
`;

/** Best effort: a headless machine simply has no opener, and the printed URL is enough. */
export function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no opener available
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8188' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      models: { type: 'string', multiple: true, default: [] },
      'no-browser': { type: 'boolean', default: false },
      'no-demo': { type: 'boolean', default: false },
      redis: { type: 'string' },
      'farm-prefix': { type: 'string' },
      device: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`resflow: --port must be an integer between 0 and 65535, got "${values.port}"`);
    return 2;
  }
  const env = createRuntimeEnv({ dataDir: values['data-dir'], modelRoots: values.models });
  applyDeviceSettings(env.dataDir, values.device === undefined ? undefined : takeDeviceFlag(['--device', values.device]).device);
  let farm: { redis: RedisOptions; prefix?: string } | undefined;
  if (values.redis) {
    farm = { redis: redisOptions(values.redis), ...(values['farm-prefix'] ? { prefix: values['farm-prefix'] } : {}) };
    await checkRedis(farm.redis);
  }
  if (!values['no-demo']) {
    ensureDemoModels(env.folders.modelsDir);
    ensureShapesModel(env.folders.modelsDir);
  }
  const registry = createNodeRegistry(env);
  const server = await startServer({ env, registry, host: values.host, port, accessToken: values.token ?? process.env[TOKEN_ENV], ...(farm ? { farm } : {}) });
  if (farm) console.log(`farm mode: prompts are queued in Redis at ${farm.redis.host}:${farm.redis.port} for \`resflow worker\``);
  const editorUrl = server.accessToken ? `${server.url}/?token=${encodeURIComponent(server.accessToken)}` : `${server.url}/`;
  console.log(`ResFlow editor: ${editorUrl}`);
  if (server.accessToken) console.log(`access token: ${server.accessToken} (send as "Authorization: Bearer <token>", or open the editor link above once)`);
  console.log(`data folder: ${env.dataDir}`);
  if (values.host !== '127.0.0.1' && values.host !== 'localhost' && values.host !== '::1') {
    console.warn('warning: the server is reachable from the network; anyone with the access token can run graphs and write files.');
  }
  const headless = process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY;
  if (!values['no-browser'] && !process.env.CI && !headless) openBrowser(editorUrl);

  const stop = async () => {
    console.log('\nstopping…');
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return new Promise<number>(() => {});
}
