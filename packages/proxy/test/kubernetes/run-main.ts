import { main } from "../../src/cli/main.js";

/** Runs `mesh-proxy <args>` in-process with `stdin`, capturing its output and exit code. */
export async function runMain(
  args: string[],
  stdin = "",
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    env: {},
    stdin: async () => stdin,
  });
  return { code, out, err };
}
