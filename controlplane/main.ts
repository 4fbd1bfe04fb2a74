#!/usr/bin/env node
/** mesh-controlplane: composition root only. */
import { main } from '../lib/cli.js';
import { controlplaneProgram } from './program.js';

main(controlplaneProgram());
