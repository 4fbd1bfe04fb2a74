#!/usr/bin/env node
/** meshctl: composition root only. */
import { main } from '../../lib/cli.js';
import { meshctlProgram } from './program.js';

main(meshctlProgram());
