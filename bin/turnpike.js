#!/usr/bin/env node
// Entry point of the `turnpike` command; the CLI itself is src/cli.ts, built to dist/src/cli.js.
import { main } from '../dist/src/cli.js';

process.exitCode = await main(process.argv.slice(2));
