// Tests run the runtime in-process, so they install the core node set the way bin/ entry points do.
import '../../nodes/core/install.js';
