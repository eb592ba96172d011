import { z } from 'zod';

// zod probes for `new Function` to speed up parsing; the editor's CSP forbids eval, so skip the probe
// (and the console violation report it would cause).
z.config({ jitless: true });
