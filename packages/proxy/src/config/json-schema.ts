import { z } from "zod";
import { configSchema } from "./schema.js";

/**
 * The JSON Schema (draft 2020-12) of the configuration file as users write it. The build
 * ships it as `dist/config.schema.json`; `mesh-proxy schema` prints it.
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" });
  return { ...schema, title: "@mesh/proxy configuration" };
}
