#!/usr/bin/env node
/** mesh-agent: composition root only. */
import { main } from '../lib/cli.js';
import { agentProgram } from './program.js';

main(agentProgram());
