/**
 * nginx: a static file server on 127.0.0.1 for the lazy-fetch peers
 * (httpfs2, rclone), as PEERS.md sets it up: byte ranges, and
 * `Accept-Ranges: bytes` on every reply, 206 included (httpfs2 fails every
 * read with EIO without it); a directory index, which rclone's http backend
 * lists files from. nginx-light, one process in the foreground (no master,
 * no daemon), our child: stopped by its PID.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Cleanup } from './cleanup.js'
import { MountProcess } from './mount-process.js'
import { accepts, freePort } from './ports.js'

/** Nginx is a running server; `url` ends with a slash. */
export interface Nginx { url: string, port: number, stop: () => Promise<void> }

/** nginxConfig is the whole configuration serving `root` on 127.0.0.1:`port`, with its files under `dir`. */
export function nginxConfig (root: string, dir: string, port: number): string {
  const tmp = path.join(dir, 'tmp')
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${path.join(dir, 'error.log')};
pid ${path.join(dir, 'nginx.pid')};
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / {
      autoindex on;
      add_header Accept-Ranges bytes always;
    }
  }
}
`
}

/** startNginx serves the files of `root` over HTTP on 127.0.0.1; its configuration and logs go to `dir`. */
export async function startNginx (root: string, dir: string, cleanup: Cleanup): Promise<Nginx> {
  await mkdir(path.join(dir, 'tmp'), { recursive: true })
  const port = await freePort()
  const conf = path.join(dir, 'nginx.conf')
  await writeFile(conf, nginxConfig(root, dir, port))
  const proc = await MountProcess.start({
    name: 'nginx', cmd: 'nginx', args: ['-c', conf, '-p', dir],
    logFile: path.join(dir, 'nginx.log'), cleanup,
    ready: () => accepts(port),
    stopTimeoutMs: 10_000,
  })
  return { url: `http://127.0.0.1:${port}/`, port, stop: () => proc.stop() }
}
