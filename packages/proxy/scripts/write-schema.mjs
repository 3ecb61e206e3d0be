// Writes dist/config.schema.json from the built zod schema (run by tsup after the build).
import { writeFile } from "node:fs/promises";

const { configJsonSchema } = await import(new URL("../dist/index.js", import.meta.url).href);
await writeFile(
  new URL("../dist/config.schema.json", import.meta.url),
  `${JSON.stringify(configJsonSchema(), null, 2)}\n`,
);
