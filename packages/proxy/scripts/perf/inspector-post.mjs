/**
 * One connected `node:inspector` session of this process and a promise-returning `post`,
 * shared by the sampling preloads (cpusample.mjs, heapsample.mjs).
 */
import { Session } from "node:inspector";

const session = new Session();
session.connect();

/** `session.post` as a promise. */
export const post = (method, params = {}) =>
  new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
  );
