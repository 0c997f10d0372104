#!/usr/bin/env node
// Entry point of the `turnpike-bench` command (the load tool); the tool itself is src/bench/main.ts,
// built to dist/src/bench/main.js, which runs on import.
import '../dist/src/bench/main.js';
