// dht run: a DHT bootstrap node for networks without the public DHT (a LAN, a lab, tests).
import { Option } from 'clipanion'
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'
import { UserError } from '../../datadir.js'
import { parseHostPort } from '../../net/config.js'

export class DhtRunCommand extends BazilCommand {
  static override paths = [['dht', 'run']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.server,
    description: 'Run a DHT bootstrap node',
    details: 'In the foreground until SIGINT or SIGTERM; servers use it with `bazil server run --bootstrap=HOST:PORT`. HOST is the IPv4 address the other nodes reach this one at (default 127.0.0.1: this host only).',
    examples: [['Run one for the LAN', 'bazil dht run --host=192.168.1.10 --port=49737']]
  })
  host = Option.String('--host', '127.0.0.1', { description: 'IPv4 address to announce and bind (default 127.0.0.1)' })
  port = Option.String('--port', '49737', { description: 'UDP port (default 49737)' })
  nodes = Option.String('--nodes', '3', { description: 'DHT nodes to run beside the bootstrap node, on free ports (default 3: servers need 3 to sample their NAT)' })

  async run(): Promise<number> {
    const { host, port } = parseHostPort(`${this.host}:${this.port}`, 'DHT address')
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(host) || host === '0.0.0.0') throw new UserError(`--host must be the IPv4 address peers reach this node at, not "${host}"`)
    const [{ default: DHT }, { abandon, checkUdpPort }, { untilSignalled }] = await Promise.all([
      import('hyperdht'), import('../../net/udp.js'), import('../../server/server.js'),
    ])
    const signalled = untilSignalled() // from here on, a signal stops the node cleanly
    try {
      await checkUdpPort(port)
    } catch (err) {
      throw new UserError(`cannot run a DHT node on ${host}:${port}: ${(err as Error).message}`)
    }
    const nodes = Number(this.nodes)
    if (!Number.isInteger(nodes) || nodes < 0 || nodes > 32) throw new UserError(`--nodes must be an integer 0-32, not "${this.nodes}"`)
    const dht = DHT.bootstrapper(port, host)
    try {
      await dht.ready()
    } catch (err) {
      await abandon(dht)
      throw new UserError(`cannot run a DHT node on ${host}:${port}: ${(err as Error).message}`)
    }
    // Persistent DHT nodes beside the bootstrapper: a server classifies its NAT from the
    // addresses at least 3 DHT nodes see it at, and until it can, hyperdht aborts the
    // holepunch of incoming connections (STACK.md; spec/protocol.md, "Discovery").
    const helpers: InstanceType<typeof DHT>[] = []
    try {
      for (let i = 0; i < nodes; i++) {
        const node = new DHT({ bootstrap: [{ host, port }], host, ephemeral: false, firewalled: false })
        helpers.push(node)
        await node.fullyBootstrapped()
      }
    } catch (err) {
      for (const n of helpers) await abandon(n)
      await dht.destroy()
      throw new UserError(`cannot start the DHT nodes beside the bootstrap node: ${(err as Error).message}`)
    }
    this.out(`DHT bootstrap node on ${host}:${port} with ${nodes} DHT nodes beside it; start servers with --bootstrap=${host}:${port}`)
    await signalled
    for (const n of helpers) await n.destroy()
    await dht.destroy()
    this.context.stderr.write('DHT node stopped\n')
    return 0
  }
}
