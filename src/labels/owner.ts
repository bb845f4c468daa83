/**
 * One live process per label database, with no hand needed after a crash.
 *
 * The SQLite driver (node-sqlite3-wasm) locks with a `<db>.lock` folder, made and removed
 * around every statement. A process killed inside one leaves the folder behind, and
 * nothing in it says whose it was, so the next start cannot tell a crash from a live
 * writer. Node has no flock/fcntl, and the native bindings that do (better-sqlite3) need an
 * install-time build the images skip (`npm ci --ignore-scripts`), so the proof of life is
 * one the kernel keeps for us: a Unix socket beside the database, listening for as long as
 * its owner lives. The kernel closes it the instant the process dies, `kill -9` and
 * OOM-kill included; a connect then fails with ECONNREFUSED, which no live owner can cause.
 * That holds across PID namespaces (a container restarted in its pod has a new one, so a
 * pid record alone could prove nothing there), for any process that shares the kernel.
 *
 * Claiming, without a race: owners bind generations `<db>.owner-<n>.sock`. A claimer
 * judges every generation present (live: refuse; dead: go on), binds the next number
 * (bind is atomic: one winner per number), then judges the lower ones again. A lower live
 * one means a concurrent claimer was first: the later one yields. A socket younger than
 * GRACE_MS that refuses is waited for rather than called dead, which covers an owner
 * between its bind and its listen. Only once a process owns the database does it remove
 * a leftover `<db>.lock`: every process that uses the database owns it first, so the
 * folder can only be a dead process's. SQLite then rolls back the dead process's
 * half-written transaction from its journal on the next read, and every committed one
 * (fsynced before it was acknowledged) stays.
 *
 * Another machine's owner (a network volume, or a pod moved to another node) cannot be
 * probed: its socket refuses here whether it lives or not. Each owner records who it is
 * (`<db>.owner-<n>.json`: pid, host, kernel boot id, start) and touches that record every
 * heartbeat; a record from another kernel counts as dead once its heartbeat is older than
 * the lease, and a claimer that sees the heartbeat move refuses.
 */
import { closeSync, lstatSync, openSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { hostname, uptime } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'

/** How long a refusing socket must exist before it counts as dead (an owner between bind and listen). */
export const GRACE_MS = 1000
/** Another kernel's owner counts as dead once its heartbeat is this old. */
export const LEASE_MS = 30_000
export const HEARTBEAT_MS = 5000
/** Unix socket paths longer than this are cut short by libuv without a word: reach them through the folder's fd. */
const MAX_SOCKET_PATH = 100

export interface OwnerIdentity {
  pid: number
  host: string
  /** The kernel's boot id: owners with the same one share the kernel, so their sockets prove life. */
  boot: string
  since: string
  command: string
}

/** The database is owned by a live process (or one that cannot be proved dead). */
export class DatabaseOwnedError extends Error {
  override name = 'DatabaseOwnedError'
  constructor(
    message: string,
    readonly owner?: OwnerIdentity,
  ) {
    super(message)
  }
}

export interface Ownership {
  /** What a dead owner left and this claim removed, for the log; undefined when nothing. */
  readonly recovered: string | undefined
  /** Gives the database up (idempotent). */
  release(): void
}

export interface ClaimOptions {
  leaseMs?: number
  heartbeatMs?: number
}

let cachedBoot: string | undefined
/** This kernel's boot id (Linux), else the host and its boot time to the minute. */
export function bootId(): string {
  if (cachedBoot !== undefined) return cachedBoot
  try {
    cachedBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    cachedBoot = `${hostname()}@${Math.round((Date.now() - uptime() * 1000) / 60_000)}`
  }
  return cachedBoot
}

function describe(owner: OwnerIdentity | undefined): string {
  if (!owner) return 'an unknown process'
  return `process ${owner.pid} on ${owner.host} (${owner.command}, since ${owner.since})`
}

/** The files of one database's ownership, reached through the folder's fd when the path is too long for a socket. */
class OwnerFiles {
  readonly dir: string
  readonly base: string
  readonly #dirFd: number | undefined
  readonly #pattern: RegExp

  constructor(dbPath: string) {
    this.dir = dirname(dbPath)
    this.base = basename(dbPath)
    const longest = join(this.dir, `${this.base}.owner-9999999999.sock`)
    this.#dirFd = Buffer.byteLength(longest) > MAX_SOCKET_PATH && process.platform === 'linux' ? openSync(this.dir, 'r') : undefined
    if (this.#dirFd === undefined && Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
      throw new DatabaseOwnedError(`the label database path ${dbPath} is too long for its owner socket (at most ${MAX_SOCKET_PATH - 30} bytes of folder on this platform)`)
    }
    this.#pattern = new RegExp(`^${this.base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.owner-(\\d+)\\.sock$`)
  }

  /** The path to bind or connect: direct, or through /proc/self/fd when the direct one is too long. */
  socket(n: number): string {
    const name = `${this.base}.owner-${n}.sock`
    return this.#dirFd === undefined ? join(this.dir, name) : `/proc/self/fd/${this.#dirFd}/${name}`
  }

  record(n: number): string {
    return join(this.dir, `${this.base}.owner-${n}.json`)
  }

  generations(): number[] {
    const found: number[] = []
    for (const name of readdirSync(this.dir)) {
      const m = this.#pattern.exec(name)
      if (m) found.push(Number(m[1]))
    }
    return found.sort((a, b) => a - b)
  }

  close(): void {
    if (this.#dirFd !== undefined) closeSync(this.#dirFd)
  }
}

type Probe = { state: 'live'; owner?: OwnerIdentity } | { state: 'refused' } | { state: 'gone' } | { state: 'error'; code: string }

/** Connects to an owner socket: connected means a live process holds it (the kernel queues the connection even if its event loop is busy). */
function probe(path: string, timeoutMs = 2000): Promise<Probe> {
  return new Promise((resolvePromise) => {
    const socket = createConnection(path)
    let data = ''
    let connected = false
    let settled = false
    const live = (): Probe => {
      try {
        return { state: 'live', owner: JSON.parse(data.split('\n')[0]!) as OwnerIdentity }
      } catch {
        return { state: 'live' }
      }
    }
    const done = (p: Probe) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolvePromise(p)
    }
    const timer = setTimeout(() => done(connected ? live() : { state: 'error', code: 'ETIMEDOUT' }), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('connect', () => (connected = true))
    socket.on('data', (chunk: string) => {
      data += chunk
      if (data.includes('\n') || data.length > 4096) done(live())
    })
    socket.on('end', () => done(live()))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return done(live())
      if (err.code === 'ECONNREFUSED') return done({ state: 'refused' })
      if (err.code === 'ENOENT') return done({ state: 'gone' })
      done({ state: 'error', code: err.code ?? String(err) })
    })
  })
}

function readRecord(path: string): { owner: OwnerIdentity; beatMs: number } | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as OwnerIdentity
    return { owner, beatMs: statSync(path).mtimeMs }
  } catch {
    return undefined
  }
}

type Verdict = { kind: 'live'; owner?: OwnerIdentity | undefined; why: string } | { kind: 'dead'; owner?: OwnerIdentity | undefined } | { kind: 'wait'; ms: number } | { kind: 'gone' }

/**
 * Whether generation `n`'s owner is alive. `beats` remembers each foreign record's first
 * heartbeat seen in this claim: a heartbeat that moves is a live owner on another kernel.
 */
async function judge(files: OwnerFiles, n: number, beats: Map<number, number>, leaseMs: number): Promise<Verdict> {
  const p = await probe(files.socket(n))
  const record = readRecord(files.record(n))
  if (p.state === 'live') return { kind: 'live', owner: p.owner ?? record?.owner, why: 'its owner socket answers' }
  if (p.state === 'gone') return { kind: 'gone' }
  if (p.state === 'error') return { kind: 'live', owner: record?.owner, why: `its owner socket cannot be probed (${p.code})` }
  let age: number
  try {
    age = Date.now() - lstatSync(files.socket(n)).mtimeMs
  } catch {
    return { kind: 'gone' }
  }
  if (!record || record.owner.boot === bootId()) return age >= GRACE_MS ? { kind: 'dead', owner: record?.owner } : { kind: 'wait', ms: GRACE_MS - age }
  const first = beats.get(n)
  if (first === undefined) beats.set(n, record.beatMs)
  else if (record.beatMs !== first) return { kind: 'live', owner: record.owner, why: 'it runs on another machine and its heartbeat moves' }
  const beatAge = Date.now() - record.beatMs
  return beatAge >= leaseMs ? { kind: 'dead', owner: record.owner } : { kind: 'wait', ms: Math.min(leaseMs - beatAge, HEARTBEAT_MS) }
}

function listen(path: string, identity: OwnerIdentity): Promise<Server> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer((c) => {
      c.on('error', () => {})
      c.end(`${JSON.stringify(identity)}\n`)
    })
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      // Owning a database must not keep a CLI run alive.
      server.unref()
      resolvePromise(server)
    })
  })
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    /* already gone */
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function claimOnce(dbPath: string, options: ClaimOptions): Promise<Ownership> {
  const leaseMs = options.leaseMs ?? LEASE_MS
  const files = new OwnerFiles(dbPath)
  const identity: OwnerIdentity = {
    pid: process.pid,
    host: hostname(),
    boot: bootId(),
    since: new Date().toISOString(),
    command: ['nima-serve', ...process.argv.slice(2)].join(' ').slice(0, 200),
  }
  const refuse = (v: { owner?: OwnerIdentity | undefined; why: string }) =>
    new DatabaseOwnedError(
      `label database ${dbPath} is in use by ${describe(v.owner)}: ${v.why}. A label database serves one process at a time: stop that one, or go through its HTTP API (/labels/*)`,
      v.owner,
    )
  const beats = new Map<number, number>()
  const giveUpAt = Date.now() + leaseMs + 10 * GRACE_MS
  try {
    for (;;) {
      if (Date.now() > giveUpAt) throw new DatabaseOwnedError(`label database ${dbPath}: could not settle its ownership in ${Math.round((leaseMs + 10 * GRACE_MS) / 1000)} s`)
      const dead: { n: number; owner?: OwnerIdentity | undefined }[] = []
      let waitMs = 0
      const present = files.generations()
      for (const n of present) {
        const v = await judge(files, n, beats, leaseMs)
        if (v.kind === 'live') throw refuse(v)
        if (v.kind === 'wait') waitMs = Math.max(waitMs, v.ms)
        if (v.kind === 'dead') dead.push({ n, owner: v.owner })
      }
      if (waitMs > 0) {
        await sleep(waitMs)
        continue
      }
      const n = (present.at(-1) ?? 0) + 1
      let server: Server
      try {
        server = await listen(files.socket(n), identity)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue
        throw new DatabaseOwnedError(`label database ${dbPath}: cannot create its owner socket ${files.socket(n)}: ${(err as Error).message}`)
      }
      const record = files.record(n)
      const giveUp = () => {
        server.close()
        removeQuietly(record)
      }
      try {
        writeFileSync(record, `${JSON.stringify(identity)}\n`)
        // The lower generations again: one that is live now was a concurrent claimer that got there first.
        for (;;) {
          let again = 0
          for (const m of files.generations().filter((g) => g < n)) {
            const v = await judge(files, m, beats, leaseMs)
            if (v.kind === 'live') throw refuse(v)
            if (v.kind === 'wait') again = Math.max(again, v.ms)
            if (v.kind === 'dead') {
              if (!dead.some((d) => d.n === m)) dead.push({ n: m, owner: v.owner })
              removeQuietly(files.socket(m))
              removeQuietly(files.record(m))
            }
          }
          if (again === 0) break
          await sleep(again)
        }
      } catch (err) {
        giveUp()
        throw err
      }
      const recovered: string[] = []
      const lock = `${dbPath}.lock`
      if (exists(lock)) {
        rmSync(lock, { recursive: true, force: true })
        recovered.push(`removed ${lock}, left by ${dead.length > 0 ? dead.map((d) => describe(d.owner)).join(', ') : 'a process that ended without releasing it'}`)
      } else if (dead.length > 0) {
        recovered.push(`took over from ${dead.map((d) => describe(d.owner)).join(', ')}, which ended without releasing it`)
      }
      const heartbeat = setInterval(() => {
        const now = new Date()
        try {
          utimesSync(record, now, now)
        } catch {
          /* the record is rewritten below if it went missing */
          try {
            writeFileSync(record, `${JSON.stringify(identity)}\n`)
          } catch {
            /* nothing more to do: a foreign claimer would wait out the lease */
          }
        }
      }, options.heartbeatMs ?? HEARTBEAT_MS)
      heartbeat.unref()
      let released = false
      return {
        recovered: recovered.length > 0 ? recovered.join('; ') : undefined,
        release() {
          if (released) return
          released = true
          clearInterval(heartbeat)
          removeQuietly(record)
          // Closing a listening Unix socket removes its file.
          server.close()
          files.close()
        },
      }
    }
  } catch (err) {
    files.close()
    throw err
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}

/**
 * Claims `dbPath` for this process, waiting out a dead owner's grace period or a foreign
 * owner's lease; throws DatabaseOwnedError when another live process holds it. One claim
 * per database per process: a second one here finds the first alive and is refused (the
 * store shares its connection within a process instead).
 */
export function claimDatabase(dbPath: string, options: ClaimOptions = {}): Promise<Ownership> {
  return claimOnce(resolve(dbPath), options)
}
