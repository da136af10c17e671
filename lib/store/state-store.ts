/**
 * state-store: a node's state directory and the LevelDB inside it.
 *
 *   STATE/db/             LevelDB: journal, meta, region maps, codes
 *   STATE/control.sock    control socket of the running node (lib/control)
 *   STATE/token           peer token (created by the primary, 0600)
 *
 * LevelDB is single-process: its LOCK file is what keeps a second node off
 * a state directory in use (STATE_LOCKED). The node's identity (role, region
 * size, node id, epoch) is written at `init` and checked at every start.
 */
import { mkdir, stat } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { ClassicLevel } from 'classic-level'
import type { AbstractSublevel } from 'abstract-level'
import { firstHistory, type History } from '../core/history.js'
import { VolmirrorError } from '../errors.js'

/** Role is what a node does now; it is state, not a different binary. */
export type Role = 'primary' | 'dr'

/** DEFAULT_REGION_SIZE is the unit of bitmaps, checksums and fetches. */
export const DEFAULT_REGION_SIZE = 1024 * 1024
export const MIN_REGION_SIZE = 64 * 1024
export const MAX_REGION_SIZE = 16 * 1024 * 1024

/** Identity is fixed at init (except role and epoch, which promotion changes). */
export interface Identity {
  format: 1
  nodeId: string
  role: Role
  regionSize: number
  epoch: number
  createdAt: string
}

type Db = ClassicLevel<Buffer, Buffer>
/** BinaryLevel holds binary keys and values (journal, bitmaps). */
export type BinaryLevel = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>
/** JsonLevel holds string keys and JSON values (meta, tables). */
export type JsonLevel = AbstractSublevel<Db, string | Buffer | Uint8Array, string, any>

// classic-level honours `sync` on puts through sublevels; abstract-level's types omit it.
const SYNC = { sync: true } as object

/** checkRegionSize throws INVALID_ARGUMENT unless `n` is a power of two in [64 KiB, 16 MiB]. */
export function checkRegionSize (n: number): number {
  if (!Number.isInteger(n) || n < MIN_REGION_SIZE || n > MAX_REGION_SIZE || (n & (n - 1)) !== 0) {
    throw new VolmirrorError('INVALID_ARGUMENT', `region size must be a power of two between 64 KiB and 16 MiB, not ${n}`)
  }
  return n
}

/** StateStore is an open state directory. */
export class StateStore {
  readonly dir: string
  readonly db: Db
  /** Meta: identity and watermarks, JSON values. */
  readonly meta: JsonLevel
  identity!: Identity

  private constructor (dir: string, db: Db) {
    this.dir = dir
    this.db = db
    this.meta = this.json('meta')
  }

  /** sublevel opens a binary-keyed, binary-valued part of the database. */
  binary (name: string): BinaryLevel {
    return this.db.sublevel<Buffer, Buffer>(name, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  }

  /** json opens a string-keyed, JSON-valued part of the database. */
  json (name: string): JsonLevel {
    return this.db.sublevel<string, any>(name, { keyEncoding: 'utf8', valueEncoding: 'json' })
  }

  /**
   * open opens (and on first use initialises) a state directory for `role`.
   * `regionSize` is fixed at init; a later start that names another size fails
   * with STATE_REGION_SIZE_MISMATCH, one with another role with
   * STATE_ROLE_MISMATCH (unless `allowRoles` lists it: promotion, failback).
   */
  static async open (dir: string, opts: { role: Role, regionSize?: number, allowRoles?: Role[] }): Promise<StateStore> {
    const abs = path.resolve(dir)
    await mkdir(abs, { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      throw new VolmirrorError(err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'STATE_INVALID' : 'IO_ERROR',
        `cannot create state directory ${abs}: ${err.message}`, { cause: err })
    })
    const db = new ClassicLevel<Buffer, Buffer>(path.join(abs, 'db'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      // Journal records are large and short-lived: a big memtable lets most
      // of them be trimmed before they are ever flushed to a table file.
      writeBufferSize: 64 * 1024 * 1024,
      maxFileSize: 32 * 1024 * 1024,
    })
    try {
      await db.open()
    } catch (err) {
      throw openError(abs, err)
    }
    const store = new StateStore(abs, db)
    try {
      await store.loadIdentity(opts)
    } catch (err) {
      await db.close().catch(() => {})
      throw err
    }
    return store
  }

  /** exists tells whether `dir` holds an initialised state directory (without opening it). */
  static async exists (dir: string): Promise<boolean> {
    return stat(path.join(path.resolve(dir), 'db', 'CURRENT')).then(() => true, () => false)
  }

  private async loadIdentity (opts: { role: Role, regionSize?: number, allowRoles?: Role[] }): Promise<void> {
    const found = await this.meta.get('identity') as Identity | undefined
    if (!found) {
      const identity: Identity = {
        format: 1,
        nodeId: randomUUID(),
        role: opts.role,
        regionSize: checkRegionSize(opts.regionSize ?? DEFAULT_REGION_SIZE),
        epoch: 0,
        createdAt: new Date().toISOString(),
      }
      await this.meta.put('identity', identity, SYNC)
      this.identity = identity
      return
    }
    if (found.format !== 1) throw new VolmirrorError('STATE_INVALID', `state directory ${this.dir} has format ${found.format}; this build reads format 1`)
    const allowed = [opts.role, ...(opts.allowRoles ?? [])]
    if (!allowed.includes(found.role)) {
      throw new VolmirrorError('STATE_ROLE_MISMATCH',
        `state directory ${this.dir} belongs to a ${found.role} node, not a ${opts.role}`, { details: { role: found.role, wanted: opts.role } })
    }
    if (opts.regionSize !== undefined && opts.regionSize !== found.regionSize) {
      throw new VolmirrorError('STATE_REGION_SIZE_MISMATCH',
        `state directory ${this.dir} was initialised with region size ${found.regionSize}, not ${opts.regionSize} (the region size is fixed at init)`,
        { details: { regionSize: found.regionSize, wanted: opts.regionSize } })
    }
    this.identity = found
  }

  /** setIdentity changes role or epoch, durably. */
  async setIdentity (patch: Partial<Pick<Identity, 'role' | 'epoch'>>): Promise<void> {
    const next = { ...this.identity, ...patch }
    await this.meta.put('identity', next, SYNC)
    this.identity = next
  }

  /** history is the node's epoch history (a first primary's when none is recorded yet). */
  async history (): Promise<History> {
    return (await this.getMeta<History>('history')) ?? []
  }

  /** setHistory records the node's history, durably. */
  async setHistory (h: History): Promise<void> {
    await this.putMeta('history', h, true)
  }

  /** ensureHistory gives a first primary its epoch 0. */
  async ensureHistory (): Promise<History> {
    const h = await this.history()
    if (h.length > 0) return h
    const first = firstHistory(this.identity.nodeId)
    await this.setHistory(first)
    return first
  }

  /** getMeta reads one JSON meta value. */
  async getMeta<V> (key: string): Promise<V | undefined> {
    return await this.meta.get(key) as V | undefined
  }

  /** putMeta writes one JSON meta value; `sync` makes it durable before resolving. */
  async putMeta (key: string, value: unknown, sync = false): Promise<void> {
    await this.meta.put(key, value, sync ? SYNC : {})
  }

  async close (): Promise<void> {
    await this.db.close()
  }
}

function openError (dir: string, err: unknown): VolmirrorError {
  const e = err as { code?: string, cause?: { code?: string, message?: string }, message?: string }
  if (e.cause?.code === 'LEVEL_LOCKED' || /lock/i.test(e.cause?.message ?? '')) {
    return new VolmirrorError('STATE_LOCKED',
      `state directory ${dir} is in use by another running node (stop it first, or use another --state)`, { cause: err })
  }
  return new VolmirrorError('STATE_INVALID', `cannot open the database in ${dir}: ${e.cause?.message ?? e.message}`, { cause: err })
}
