import { defineConfig } from "tsup";

// The ASN.1 schema packages are installed with @peculiar/x509 (see package.json); keep
// them out of the bundle so consumers share one copy.
const external = [/^@peculiar\//, "asn1js", "tslib"];

export default defineConfig([
  {
    entry: ["src/index.ts"],
    format: ["esm"],
    target: "node22",
    dts: true,
    clean: true,
    sourcemap: false,
    external,
  },
  {
    entry: ["src/cli.ts"],
    format: ["esm"],
    target: "node22",
    dts: false,
    clean: false,
    sourcemap: false,
    external,
    banner: { js: "#!/usr/bin/env node" },
  },
]);
