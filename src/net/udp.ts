// Binding hyperdht's UDP socket without leaving a half-open DHT node behind.
import dgram from 'node:dgram'
import type DHT from 'hyperdht'

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Fails with a clear message if the UDP port can't be bound (on all interfaces, as hyperdht binds). */
export async function checkUdpPort(port: number): Promise<void> {
  const sock = dgram.createSocket('udp4')
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject)
      sock.bind(port, '0.0.0.0', () => resolve())
    })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new Error(code === 'EADDRINUSE' ? `UDP port ${port} is in use` : `cannot bind UDP port ${port}: ${message(err)}`)
  } finally {
    await new Promise<void>((r) => {
      try {
        sock.close(() => r())
      } catch {
        r()
      }
    })
  }
}

/** Releases a hyperdht node whose bind failed (destroy() rethrows the bind error and stops halfway). */
export async function abandon(dht: DHT): Promise<void> {
  await dht.destroy().catch(() => {})
  const io = (dht as unknown as { io?: { networkInterfaces?: { destroy(): Promise<void> } } }).io
  await io?.networkInterfaces?.destroy().catch(() => {})
}
