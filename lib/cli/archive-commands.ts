/**
 * archive-commands: the CLI of the journal archive. `archive ls` lists
 * what an archive holds and which points it can restore; `restore`
 * rebuilds every volume at one of them into a new directory, on any
 * machine (it needs the store, not the primary). `primary --archive`
 * (bin/cli.ts) is what fills the archive.
 */
import type { Command } from 'commander'
import type { ArchiveSettings } from '../node/primary-node.js'
import { parseArchiveUrl, ObjectStore, type ArchiveUrl, type ObjectStoreOptions } from '../archive/object-store.js'
import { listArchive, restore } from '../archive/restore.js'
import { VolmirrorError } from '../errors.js'
import { formatBytes } from './parse.js'
import { common, durationOption, urlOption, usage, type CommonOpts } from './options.js'
import { pointArgs } from './history-commands.js'
import { ProgressView } from './progress.js'

/** StoreFlags are the flags every command that reaches a store takes. */
interface StoreFlags { archive: string, archiveEndpoint?: string, archiveRegion?: string }

/** storeOptions adds the flags that say where the store is. */
export function storeOptions (cmd: Command, required: boolean): Command {
  return (required
    ? cmd.requiredOption('--archive <url>', 'the archive: s3://BUCKET/PREFIX')
    : cmd.option('--archive <url>', 'archive the journal to s3://BUCKET/PREFIX (sealed chunks, base snapshots): restorable anywhere with volmirror restore'))
    .option('--archive-endpoint <url>', 'an S3-compatible store that is not AWS (MinIO, Ceph RGW, R2, ...), e.g. http://minio:9000; credentials as for AWS (AWS_ACCESS_KEY_ID, ~/.aws/credentials)')
    .option('--archive-region <region>', 'the store\'s region (default AWS_REGION, or us-east-1)')
}

/** primaryArchiveOptions adds `primary`'s --archive flags. */
export function primaryArchiveOptions (cmd: Command): Command {
  return storeOptions(cmd, false)
    .option('--archive-every <duration>', 'seal and upload a journal chunk at least this often (the archive\'s RPO)', '10s')
    .option('--archive-base-every <duration>', 'take a base snapshot (uploading only regions the archive lacks) this often', '24h')
    .option('--archive-retention <duration>', 'delete archived objects no point within this window needs, e.g. 30d (default: keep all)')
}

/** ArchiveFlags are `primary`'s --archive* flags. */
export type ArchiveFlags = Partial<StoreFlags> & { archiveEvery: string, archiveBaseEvery: string, archiveRetention?: string }

/** archiveSettings reads `primary`'s --archive flags (undefined without --archive); checked before anything is created. */
export function archiveSettings (o: ArchiveFlags): ArchiveSettings | undefined {
  if (o.archive === undefined) {
    if (o.archiveEndpoint !== undefined) throw new VolmirrorError('USAGE', '--archive-endpoint needs --archive s3://BUCKET/PREFIX')
    if (o.archiveRetention !== undefined) throw new VolmirrorError('USAGE', '--archive-retention needs --archive s3://BUCKET/PREFIX')
    return undefined
  }
  return {
    url: o.archive,
    ...checkStoreFlags({ ...o, archive: o.archive }).opts,
    sealMs: durationOption('--archive-every', o.archiveEvery),
    baseEveryMs: durationOption('--archive-base-every', o.archiveBaseEvery),
    ...(o.archiveRetention !== undefined ? { retentionMs: durationOption('--archive-retention', o.archiveRetention) } : {}),
  }
}

/** checkStoreFlags checks where the store is (a usage error naming the flag otherwise). */
function checkStoreFlags (o: StoreFlags): { where: ArchiveUrl, opts: ObjectStoreOptions } {
  const where = usage('--archive', () => parseArchiveUrl(o.archive))
  if (o.archiveEndpoint !== undefined) urlOption('--archive-endpoint', o.archiveEndpoint, 'http://minio:9000')
  return { where, opts: { ...(o.archiveEndpoint ? { endpoint: o.archiveEndpoint } : {}), ...(o.archiveRegion ? { region: o.archiveRegion } : {}) } }
}

function openStore (o: StoreFlags): ObjectStore {
  const { where, opts } = checkStoreFlags(o)
  return new ObjectStore(where, opts)
}

/** addArchiveCommands adds `archive ls` and `restore` to the program. */
export function addArchiveCommands (program: Command): void {
  const archive = program.command('archive').description('the journal archive in an S3-compatible store (see primary --archive)')
  storeOptions(common(archive.command('ls')), true)
    .description('list what an archive holds: base snapshots, journal chunks, and the points it can restore')
    .option('--json', 'print it as JSON', false)
    .addHelpText('after', `
Example:
  volmirror archive ls --archive s3://backups/volmirror/site-a
  volmirror archive ls --archive s3://vm/site-a --archive-endpoint http://minio:9000`)
    .action(async (o: CommonOpts & StoreFlags & { json: boolean }) => {
      const store = openStore(o)
      try {
        const l = await listArchive(store)
        if (o.json) { process.stdout.write(JSON.stringify(l, null, 2) + '\n'); return }
        process.stdout.write(`${l.url}: ${l.bases.length} base snapshot(s), ${l.chunks.count} journal chunk(s) (${formatBytes(l.chunks.bytes)}), ${l.regions.count} region object(s) (${formatBytes(l.regions.bytes)})\n`)
        if (l.restorable.length === 0) process.stdout.write('  nothing restorable yet: the first base snapshot and the journal after it are still being uploaded\n')
        for (const r of l.restorable) process.stdout.write(`  restorable: any group boundary from seq ${r.fromSeq} (${r.from}) to seq ${r.toSeq} (${r.to})\n`)
        for (const b of l.bases) process.stdout.write(`  base: seq ${b.seq} (complete at ${b.complete}), ${b.time}\n`)
      } finally {
        store.close()
      }
    })

  storeOptions(common(program.command('restore')), true)
    .description('rebuild every volume as of one point of an archive (the last group boundary at or before --at), into a new directory, sparse')
    .requiredOption('--images <dir>', 'where the volumes go: a new or empty directory')
    .option('--at <time>', 'the last group boundary at or before this time (ISO 8601, or now-10m); default: the latest')
    .option('--seq <n>', 'exactly this group boundary (see archive ls)')
    .option('--json', 'print the result as JSON', false)
    .addHelpText('after', `
Example:
  volmirror archive ls --archive s3://backups/volmirror/site-a
  volmirror restore --archive s3://backups/volmirror/site-a --at 2026-12-04T10:42:07Z --images /srv/restored
  sha256sum /srv/restored/*.raw`)
    .action(async (o: CommonOpts & StoreFlags & { images: string, at?: string, seq?: string, json: boolean }) => {
      const p = pointArgs(o)
      const store = openStore(o)
      const view = new ProgressView({ stream: process.stderr })
      try {
        const r = await restore(store, {
          images: o.images,
          target: { ...(p.at !== undefined ? { atMs: p.at } : {}), ...(p.seq !== undefined ? { seq: p.seq } : {}) },
          onProgress: x => view.update(x.step, { label: x.step === 'regions' ? 'base regions' : 'journal chunks', done: x.done, total: x.total, unit: { name: x.step === 'regions' ? 'regions' : 'chunks' }, kind: 'restore' }),
        })
        view.stop()
        if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return }
        process.stdout.write(`restored seq ${r.seq} (${r.time}) into ${o.images}: ${r.volumes.length} volume(s), ${r.regions} base regions, ${r.records} journal records, ${formatBytes(r.downloadedBytes)} downloaded\n`)
        for (const v of r.volumes) process.stdout.write(`  ${v.name}  ${formatBytes(v.size)}\n`)
      } finally {
        view.stop()
        store.close()
      }
    })
}
