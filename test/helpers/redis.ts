import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createConnection } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../deploy/helpers.js'

/**
 * A real redis-server (Debian package redis-server, installed by .ci/run) on a free
 * loopback port, with no persistence. Tests stop it in teardown.
 */
export interface RedisServer {
  url: string
  port: number
  process: ChildProcess
  /** SIGSTOP: the connection stays up and nothing answers. */
  pause(): void
  /** SIGCONT */
  resume(): void
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>
  /** A fresh server on the same port (after `kill`). */
  restart(): Promise<void>
  stop(): Promise<void>
}

/** Why Redis tests cannot run here, or undefined when they can. */
export function redisMissing(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  return r.status === 0 ? undefined : 'Debian package redis-server; .ci/run installs it'
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

function launch(port: number): ChildProcess {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: 'ignore',
  })
  child.on('error', () => {})
  return child
}

async function waitReady(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
    if (await ping(port)) return
    await sleep(50)
  }
  throw new Error(`redis-server did not answer on port ${port}`)
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let child = launch(port)
  await waitReady(port, child)
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get process() {
      return child
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async kill() {
      child.kill('SIGKILL')
      await exited(child)
    },
    async restart() {
      child = launch(port)
      await waitReady(port, child)
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGCONT')
      child.kill('SIGTERM')
      await exited(child)
    },
  }
  return server
}
