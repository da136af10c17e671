/**
 * sample: the demo's images.
 *
 * `disk.img` is a sparse image holding a real ext4 file system with a few
 * files in it (text, random binary data and their SHA256SUMS, so a copy
 * can be checked with `sha256sum -c` once mounted), made by `mkfs.ext4 -d`
 * without mounting anything. Where mkfs.ext4 is missing it is a sparse
 * image with a known pattern in some regions instead. `data.raw` is a raw
 * image with random data in some regions; the demo keeps writing to it.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { formatBytes } from '../cli/parse.js'
import { VolmirrorError } from '../errors.js'

const MiB = 1 << 20

/** SampleInfo says what was made, for the demo to print. */
export interface SampleInfo {
  /** Files in the image directory, with what they hold. */
  images: Array<{ name: string, size: number, what: string }>
  /** Whether disk.img holds ext4 (false: a pattern image, mkfs.ext4 missing). */
  ext4: boolean
  /** Where the files put into the ext4 image are (to compare with a mounted copy). */
  sourceDir?: string
}

/** DATA_IMAGE is the image the demo's writer writes to. */
export const DATA_IMAGE = 'data.raw'
/** DATA_IMAGE_SIZE is its size. */
export const DATA_IMAGE_SIZE = 64 * MiB

function run (cmd: string, args: string[]): Promise<{ ok: boolean, missing: boolean, stderr: string }> {
  return new Promise(resolve => execFile(cmd, args, (err, _stdout, stderr) => {
    resolve({ ok: !err, missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT', stderr: String(stderr) })
  }))
}

/** makeSample creates the demo's images in `imagesDir`, using `workDir` for the files put into ext4. */
export async function makeSample (imagesDir: string, workDir: string, size: number): Promise<SampleInfo> {
  await mkdir(imagesDir, { recursive: true })
  const src = path.join(workDir, 'sample-files')
  const dataBytes = await writeSampleFiles(src, Math.min(24 * MiB, Math.floor(size / 16)))
  const disk = path.join(imagesDir, 'disk.img')
  // mke2fs takes the size in KiB when it has no unit; it creates the file.
  const mk = await run('mkfs.ext4', ['-q', '-F', '-L', 'volmirror-demo', '-d', src, disk, `${Math.floor(size / 1024)}k`])
  const images: SampleInfo['images'] = []
  let ext4 = mk.ok
  if (ext4) {
    images.push({ name: 'disk.img', size, what: `ext4 file system with sample files (${formatBytes(dataBytes)}; SHA256SUMS inside)` })
  } else {
    if (!mk.missing) throw new VolmirrorError('IO_ERROR', `mkfs.ext4 failed: ${mk.stderr.trim()}`)
    ext4 = false
    await patternImage(disk, size)
    images.push({ name: 'disk.img', size, what: 'a pattern in every 16th MiB (mkfs.ext4 is missing: no file system)' })
  }
  const regions = await randomImage(path.join(imagesDir, DATA_IMAGE), DATA_IMAGE_SIZE, 12)
  images.push({ name: DATA_IMAGE, size: DATA_IMAGE_SIZE, what: `raw, random data in ${regions} regions; the demo keeps writing to it` })
  return { images, ext4, ...(ext4 ? { sourceDir: src } : {}) }
}

/** writeSampleFiles fills `dir` with text and binary files (about `binaryBytes` of random data) and a SHA256SUMS; returns the bytes written. */
async function writeSampleFiles (dir: string, binaryBytes: number): Promise<number> {
  await mkdir(path.join(dir, 'notes'), { recursive: true })
  await mkdir(path.join(dir, 'data'), { recursive: true })
  const files: Array<[string, Buffer]> = []
  files.push(['README.txt', Buffer.from([
    'This file system was made by `volmirror demo` with mkfs.ext4 -d.',
    'The demo replicates the image that holds it from a primary to a DR.',
    'Mounted from the DR copy, `sha256sum -c SHA256SUMS` checks every file.',
    '',
  ].join('\n'))])
  for (let n = 1; n <= 5; n++) {
    const lines: string[] = []
    for (let i = 1; i <= 2000 * n; i++) lines.push(`note ${n}, line ${i}: the quick brown fox jumps over the lazy dog ${(i * 7919 * n) % 10007}`)
    files.push([`notes/note-${n}.txt`, Buffer.from(lines.join('\n') + '\n')])
  }
  const pieces = 4
  for (let n = 1; n <= pieces; n++) files.push([`data/random-${n}.bin`, randomBytes(Math.max(4096, Math.floor(binaryBytes / pieces)))])
  let bytes = 0
  const sums: string[] = []
  for (const [name, data] of files) {
    await writeFile(path.join(dir, name), data)
    bytes += data.length
    sums.push(`${createHash('sha256').update(data).digest('hex')}  ${name}`)
  }
  await writeFile(path.join(dir, 'SHA256SUMS'), sums.join('\n') + '\n')
  return bytes
}

/** patternImage makes a sparse image with a recognisable pattern in every 16th MiB. */
async function patternImage (file: string, size: number): Promise<void> {
  const fh = await open(file, 'w')
  try {
    await fh.truncate(size)
    const buf = Buffer.alloc(MiB)
    for (let off = 0; off + MiB <= size; off += 16 * MiB) {
      for (let i = 0; i < MiB; i += 4) buf.writeUInt32LE(((off + i) / 4) >>> 0, i)
      await fh.write(buf, 0, MiB, off)
    }
  } finally {
    await fh.close()
  }
}

/** randomImage makes a sparse image with random data in `count` random 1 MiB regions; returns how many distinct ones. */
async function randomImage (file: string, size: number, count: number): Promise<number> {
  const fh = await open(file, 'w')
  const used = new Set<number>()
  try {
    await fh.truncate(size)
    const regions = Math.floor(size / MiB)
    for (let i = 0; i < count; i++) {
      const r = Math.floor(Math.random() * regions)
      used.add(r)
      await fh.write(randomBytes(MiB), 0, MiB, r * MiB)
    }
  } finally {
    await fh.close()
  }
  return used.size
}
