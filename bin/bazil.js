#!/usr/bin/env node
// Entry point installed as `bazil`: the compiled CLI lives in dist/ (built by `npm install`).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv.slice(2)))
