import { installNodeSet } from '../../runtime/nodes-api/node-set.js';
import { createCoreRegistry } from './index.js';

/** Imported by entry points (CLI, server, tests) so the runtime builds its registry from the core nodes. */
installNodeSet(createCoreRegistry);
