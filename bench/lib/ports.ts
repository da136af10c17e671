/**
 * ports: loopback ports for the servers a benchmark starts (nginx,
 * qemu-nbd, an rsync daemon), and a probe that tells when one answers.
 */
import net from 'node:net'

/** freePort asks the kernel for a port on 127.0.0.1 that is free right now (a server started next will almost surely get it). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}

/** accepts tells whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    const done = (ok: boolean): void => { s.destroy(); resolve(ok) }
    s.once('connect', () => done(true))
    s.once('error', () => done(false))
    s.setTimeout(1000, () => done(false))
  })
}
