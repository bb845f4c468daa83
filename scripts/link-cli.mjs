// Part of `prepare`: makes `npx nima-serve` run this checkout's CLI at once.
//
// A package.json `bin` would do it too, but npx treats a project whose own package
// declares the bin as a package to install: on the first call after a clone it copies
// the project into its cache (~/.npm/_npx) and resolves every dependency there, which
// took 20 to 60 s here before `--help` printed. A link in node_modules/.bin is found
// and run directly. The package is private (never published), so no `bin` is lost.
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs'

const target = 'dist/cli/main.js'
chmodSync(target, 0o755)
mkdirSync('node_modules/.bin', { recursive: true })
rmSync('node_modules/.bin/nima-serve', { force: true })
symlinkSync(`../../${target}`, 'node_modules/.bin/nima-serve')
