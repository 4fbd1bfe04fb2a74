/** Free TCP ports on loopback: the tests use the same helper as the demo. */
export { freePort, freePorts } from '../../lib/ports.js';
