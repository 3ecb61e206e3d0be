import { Agent as Agent8, type Dispatcher as Dispatcher8 } from "undici";
import { Agent as Agent7, type Dispatcher as Dispatcher7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import {
  asInterceptor,
  type DispatchController,
  type DispatchHandler,
  isControllerHandler,
  type LegacyHandler,
  toControllerHandler,
} from "../src/index.js";
import { serve, type TestServer } from "./support/net.js";
import { observing } from "./support/observer.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function hello(): Promise<TestServer> {
  const s = await serve((_req, res) => res.end("hello"));
  cleanups.push(() => s.close());
  return s;
}

describe("types shared by undici 7 and 8 (checked by tsc, exercised at run time)", () => {
  it("an interceptor typed with these types composes onto both majors without casts", async () => {
    const s = await hello();
    const { interceptor, seen } = observing();
    const a8 = new Agent8();
    const a7 = new Agent7();
    cleanups.push(
      () => a8.destroy(),
      () => a7.destroy(),
    );
    const c8: Dispatcher8.ComposedDispatcher = a8.compose(interceptor);
    const c7: Dispatcher7.ComposedDispatcher = a7.compose(interceptor);
    const r8 = await c8.request({ origin: s.origin, path: "/", method: "GET" });
    const r7 = await c7.request({ origin: s.origin, path: "/", method: "GET" });
    expect(await r8.body.text()).toBe("hello");
    expect(await r7.body.text()).toBe("hello");
    // Both majors' own request() handlers already speak the controller API: passed through.
    expect(seen.map((o) => o.adapted)).toEqual([false, false]);
  });

  it("handler and controller types are assignable to and from both majors' types", () => {
    const handler: DispatchHandler = {};
    const to8: Dispatcher8.DispatchHandler = handler;
    const to7: Dispatcher7.DispatchHandler = handler;
    const from8: DispatchHandler = to8;
    const from7: DispatchHandler = to7;
    const controller = null as unknown as Dispatcher8.DispatchController;
    const c: DispatchController | null = controller;
    const c7: Dispatcher7.DispatchController | null = c;
    expect([from8, from7, c7]).toEqual([handler, handler, null]);
    // An interceptor typed against undici 7 can hand its handler over without a cast.
    expect(isControllerHandler(toControllerHandler(to7))).toBe(true);
  });

  it("toControllerHandler returns controller handlers as they are and adapts legacy ones", () => {
    const modern: DispatchHandler = { onRequestStart() {} };
    const legacy: LegacyHandler = { onHeaders: () => true, onError() {} };
    expect(toControllerHandler(modern)).toBe(modern);
    const adapted = toControllerHandler(legacy);
    expect(adapted).not.toBe(legacy);
    expect(isControllerHandler(adapted)).toBe(true);
    expect(toControllerHandler(adapted)).toBe(adapted);
    expect(isControllerHandler(legacy)).toBe(false);
  });

  it("asInterceptor returns the function it is given", () => {
    const fn = (dispatch: Parameters<Parameters<typeof asInterceptor>[0]>[0]) => dispatch;
    expect(asInterceptor(fn)).toBe(fn);
  });
});
