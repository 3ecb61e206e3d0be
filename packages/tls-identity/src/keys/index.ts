export {
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  type KeyPair,
  type KeyType,
  keyTypeOf,
} from "./keys.js";
