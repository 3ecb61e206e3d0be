export * from "./header.js";
export * from "./read.js";
