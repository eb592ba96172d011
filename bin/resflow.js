#!/usr/bin/env node
// The CLI is TypeScript run through tsx's loader, so a checkout works without a build step.
import { register } from 'tsx/esm/api';

register();
// The runtime runs the node set the entry point installs (runtime/ never imports nodes/).
await import('../nodes/core/install.ts');
const { main } = await import('../runtime/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
