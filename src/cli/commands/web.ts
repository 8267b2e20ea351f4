// web url: where the running server's web view answers, with its token.
import { BazilCommand } from '../base.js'
import { CATEGORY } from '../categories.js'

export class WebUrlCommand extends BazilCommand {
  static override paths = [['web', 'url']]
  static override usage = BazilCommand.Usage({
    category: CATEGORY.server,
    description: 'Print the web view address with its token',
    details: 'The server must run with `--web=HOST:PORT`. The token lets whoever has it read and change your volumes: keep it to yourself. It changes at every server start.',
    examples: [['Print it (open it in a browser on this machine)', 'bazil web url']]
  })

  async run(): Promise<void> {
    this.out((await this.call('web.url', {})).url)
  }
}
