// The small argument reader every command shares: flags with values, boolean flags, positional arguments.

/** A mistake in the command line: printed with the usage text, exit code 2. */
export class UsageError extends Error {}

/** A command of the `proxy-protocol-audit` tool. Returns the exit code. */
export interface Command {
  /** One or more lines for the usage text. */
  usage: string;
  run(args: string[]): Promise<number>;
}

/**
 * Splits `args` into positional arguments and options. `valued` names the options that take a value
 * (`--name VALUE` or `--name=VALUE`); `flags` those that do not. Anything else starting with `--` is an error.
 */
export function parseArgs(
  args: string[],
  valued: readonly string[],
  flags: readonly string[] = [],
): { positional: string[]; options: Map<string, string[]>; set: Set<string> } {
  const positional: string[] = [];
  const options = new Map<string, string[]>();
  const set = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith('--') || a === '--') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    if (valued.includes(name)) {
      const v = eq < 0 ? args[++i] : a.slice(eq + 1);
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      options.set(name, [...(options.get(name) ?? []), v]);
    } else if (flags.includes(name) && eq < 0) set.add(name);
    else throw new UsageError(`unknown option ${a}`);
  }
  return { positional, options, set };
}

/** The last value given for an option. */
export function last(options: Map<string, string[]>, name: string): string | undefined {
  const v = options.get(name);
  return v === undefined ? undefined : v[v.length - 1];
}
