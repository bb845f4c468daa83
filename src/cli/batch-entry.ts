#!/usr/bin/env node
/**
 * Stand-alone entry for `batch` and `rank-hotels` (`node dist/cli/batch-entry.js batch …`),
 * used by the tests to run the real command as a child process; `nima-serve batch` is
 * the same code behind the main CLI.
 */
import { runBatchCommand, runRankHotelsCommand, BATCH_USAGE, RANK_HOTELS_USAGE } from './batch-command.js'
import type { CliIo } from './io.js'

const io: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  progressStream: process.stderr,
  env: process.env,
}
const [command, ...rest] = process.argv.slice(2)
if (command === 'batch') process.exitCode = await runBatchCommand(rest, io)
else if (command === 'rank-hotels') process.exitCode = await runRankHotelsCommand(rest, io)
else {
  io.err(`usage: batch-entry.js batch|rank-hotels …\n\n${BATCH_USAGE}\n\n${RANK_HOTELS_USAGE}`)
  process.exitCode = 2
}
