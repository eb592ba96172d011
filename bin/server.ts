// Entry point of `npm start`: installs the core node set, then starts the server (runtime/ never imports nodes/).
import '../nodes/core/install.js';
import { main } from '../runtime/server/main.js';

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(`resflow: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
