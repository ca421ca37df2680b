/**
 * A start-up failure a person can act on (a bad setting, a missing server, a wrong option): the
 * process reports its message alone and exits, without a stack trace. Anything else that stops
 * start-up is a bug and is logged with its stack.
 */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
