import { cacheCommand } from './cache.js';
import { conformanceCommand } from './conformance.js';
import { convertCommand, demoCommand, nodesCommand, validateCommand } from './commands.js';
import { applyDeviceSettings, takeDeviceFlag } from './device-flag.js';
import { applyPrecisionSettings, takePrecisionFlag } from './precision-flag.js';
import { evalResolutionCommand } from './eval-resolution.js';
import { runCommand } from './run.js';
import { workerCommand } from './worker.js';
import { serveCommand } from './serve.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  run: { run: runCommand, summary: 'run a workflow (.json editor/API format, or a .png with one embedded)' },
  validate: { run: validateCommand, summary: 'check a workflow without running it' },
  nodes: { run: nodesCommand, summary: 'list the node library or describe a node' },
  convert: { run: convertCommand, summary: 'convert a workflow between editor and API formats' },
  'eval-resolution': { run: evalResolutionCommand, summary: 'score a model at many sizes with and without resolution methods (Shapes)' },
  demo: { run: demoCommand, summary: 'render ResFlow Shapes base vs ResAdapter at several sizes, scored (grid + table)' },
  serve: { run: serveCommand, summary: 'start the server and the editor (--port, --host, --data-dir, --no-browser)' },
  conformance: { run: (a) => conformanceCommand(a), summary: 'check ResFlow against a conformance folder (ComfyUI reference outputs)' },
  worker: { run: workerCommand, summary: 'run prompts for a farm front server through Redis (see --help)' },
  cache: { run: (a) => cacheCommand(a), summary: 'show the compiled-model cache and its budget; --clear empties it' },
};

export function usage(): string {
  const lines = ['usage: resflow <command> [options]', '', 'commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}${c.summary}`);
  lines.push('', "run 'resflow <command> --help' for a command's options");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`resflow: unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  try {
    const { argv: withoutDevice, device } = takeDeviceFlag(rest);
    const { argv: args, precision } = takePrecisionFlag(withoutDevice);
    applyDeviceSettings(dataDirOf(args), device);
    applyPrecisionSettings(dataDirOf(args), precision);
    return await c.run(args);
  } catch (e) {
    console.error(`resflow ${cmd}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

/** Where the config file (with its device settings) lives for this command line. */
function dataDirOf(args: readonly string[]): string {
  const i = args.findIndex((a) => a === '--data' || a === '--data-dir');
  return (i >= 0 ? args[i + 1] : undefined) ?? process.env.RESFLOW_DATA_DIR ?? process.cwd();
}
