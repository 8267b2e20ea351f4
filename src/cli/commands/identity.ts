// create, debug pubkey, sharing add|list: the node's identity and keys.
import { Option } from 'clipanion'
import { BazilCommand, readAll } from '../base.js'
import { CATEGORY } from '../categories.js'

/** More than any key: the op says what length it wants. */
const READ_LIMIT = 1024

export class CreateCommand extends BazilCommand {
  static override paths = [['create']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.identity,
    description: 'Create a data dir and a node identity',
    details: 'The data dir gets a new node identity (its key pair) and a sharing key named `default`.',
    examples: [
      ['Make a node', 'bazil create'],
      ['Make one in another data dir', 'bazil --data-dir=/srv/bazil create']
    ]
  })

  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const r = await this.call('create', {})
    if (this.asJson) return this.json(r)
    this.out(`created data dir ${r.dataDir}`)
    this.out(`node public key: ${r.publicKey}`)
  }
}

export class DebugPubkeyCommand extends BazilCommand {
  static override paths = [['debug', 'pubkey']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.identity,
    description: "Print this node's public key",
    details: 'In z-base-32: what other nodes give `bazil peer add` to know this one.'
  })

  async run(): Promise<void> {
    this.out((await this.call('debug.pubkey', {})).publicKey)
  }
}

export class SharingAddCommand extends BazilCommand {
  static override paths = [['sharing', 'add']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.identity,
    description: 'Add a sharing key read from stdin',
    details: 'A sharing key is exactly 32 secret bytes; volumes created with it (`volume create --sharing=NAME`) are readable by the nodes that have it.',
    examples: [['Add a key made by dd', 'dd if=/dev/urandom bs=32 count=1 of=sekrit && bazil sharing add friends <sekrit']]
  })
  name = Option.String({ required: true })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const key = await readAll(this.context.stdin, READ_LIMIT)
    const r = await this.call('sharing.add', { name: this.name, key: key.toString('base64') })
    if (this.asJson) return this.json(r)
    this.out(`added sharing key "${this.name}"`)
  }
}

export class SharingListCommand extends BazilCommand {
  static override paths = [['sharing', 'list']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.identity,
    description: 'List the sharing keys by name'
  })
  asJson = Option.Boolean('--json', false)

  async run(): Promise<void> {
    const { names } = await this.call('sharing.list', {})
    if (this.asJson) this.json(names)
    else for (const n of names) this.out(n)
  }
}
