#!/usr/bin/env -S node --max-semi-space-size=2 --optimize-for-size
/** mesh-agent: composition root only. */
import { main } from '../lib/cli.js';
import { agentProgram } from './program.js';

main(agentProgram());
