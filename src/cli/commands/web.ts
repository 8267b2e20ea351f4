// web url: where the running server's web view answers, with its token.
import { BazilCommand, type Where } from '../base.js'

export class WebUrlCommand extends BazilCommand {
  static override paths = [['web', 'url']]
  static override where: Where = 'api'
  static override usage = BazilCommand.Usage({
    description: 'Print the address of the web view (with its token: keep it to yourself) of the server started with --web',
    examples: [['Open the web view', 'xdg-open "$(bazil web url)"']]
  })

  async run(): Promise<void> {
    this.out((await this.call('web.url', {})).url)
  }
}
