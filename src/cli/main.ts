#!/usr/bin/env node
import { runCli } from './run-cli.js'

// exitCode rather than process.exit(), so pending output is flushed before Node exits.
process.exitCode = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  progressStream: process.stderr,
  env: process.env,
})
