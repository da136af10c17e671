/**
 * fsop-child: performs file operations for a test, in a separate process.
 *
 * A test that hosts a FUSE mount in its own process must not call into that
 * mount itself (the handlers run on its main thread). It sends a list of
 * operations here (JSON on stdin) and reads the results (JSON on stdout).
 * Synchronous calls are fine in this process: it hosts nothing.
 */
import fs from 'node:fs'
import { createHash } from 'node:crypto'
import { pattern } from './pattern.js'

type Op = Record<string, any> & { op: string }

function one (o: Op): unknown {
  switch (o.op) {
    case 'write': {
      const data = o.data !== undefined ? Buffer.from(o.data, 'base64') : pattern(o.seed, o.length)
      const fd = fs.openSync(o.path, o.create ? 'w+' : 'r+')
      try {
        let done = 0
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, o.offset + done)
        if (o.fsync) fs.fsyncSync(fd)
      } finally { fs.closeSync(fd) }
      return { written: data.length }
    }
    case 'read': {
      const fd = fs.openSync(o.path, 'r')
      try {
        const buf = Buffer.alloc(o.length)
        const n = fs.readSync(fd, buf, 0, o.length, o.offset)
        return o.hash ? { n, sha256: sha(buf.subarray(0, n)) } : { n, data: buf.subarray(0, n).toString('base64') }
      } finally { fs.closeSync(fd) }
    }
    case 'hash': {
      const b = fs.readFileSync(o.path)
      return { size: b.length, sha256: sha(b) }
    }
    case 'readText': return { text: fs.readFileSync(o.path, 'utf8') }
    case 'writeText': fs.writeFileSync(o.path, o.text); return {}
    case 'stat': {
      const s = fs.statSync(o.path)
      return { size: s.size, mode: s.mode, uid: s.uid, gid: s.gid, nlink: s.nlink, blocks: s.blocks, mtimeMs: s.mtimeMs, atimeMs: s.atimeMs, isFile: s.isFile(), isDirectory: s.isDirectory() }
    }
    case 'truncate': fs.truncateSync(o.path, o.size); return {}
    case 'ftruncate': {
      const fd = fs.openSync(o.path, 'r+')
      try { fs.ftruncateSync(fd, o.size) } finally { fs.closeSync(fd) }
      return {}
    }
    case 'create': {
      const fd = fs.openSync(o.path, 'wx', o.mode ?? 0o644)
      fs.closeSync(fd)
      return {}
    }
    case 'rename': fs.renameSync(o.from, o.to); return {}
    case 'unlink': fs.unlinkSync(o.path); return {}
    case 'mkdir': fs.mkdirSync(o.path, { mode: o.mode ?? 0o755 }); return {}
    case 'rmdir': fs.rmdirSync(o.path); return {}
    case 'chmod': fs.chmodSync(o.path, o.mode); return {}
    case 'utimes': fs.utimesSync(o.path, o.atime, o.mtime); return {}
    case 'readdir': return { names: fs.readdirSync(o.path).sort() }
    case 'statfs': { const s = fs.statfsSync(o.path); return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail } }
    case 'fsync':
    case 'fdatasync': {
      const fd = fs.openSync(o.path, 'r+')
      try { if (o.op === 'fsync') fs.fsyncSync(fd); else fs.fdatasyncSync(fd) } finally { fs.closeSync(fd) }
      return {}
    }
    default: throw new Error(`unknown op ${o.op}`)
  }
}

function sha (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

const input = fs.readFileSync(0, 'utf8')
const ops = JSON.parse(input) as Op[]
const results = ops.map((o) => {
  try {
    return { ok: true, ...(one(o) as object) }
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code ?? 'ERROR', message: (err as Error).message }
  }
})
process.stdout.write(JSON.stringify(results))
