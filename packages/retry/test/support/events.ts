import diagnostics from "node:diagnostics_channel";

/** Collects messages published on the given channels until `stop()`. */
export function collect(names: string[]): {
  events: { channel: string; message: unknown }[];
  stop(): void;
} {
  const events: { channel: string; message: unknown }[] = [];
  const subs = names.map((name) => {
    const fn = (message: unknown) => events.push({ channel: name, message });
    diagnostics.subscribe(name, fn);
    return () => diagnostics.unsubscribe(name, fn);
  });
  return {
    events,
    stop: () => {
      for (const unsubscribe of subs) unsubscribe();
    },
  };
}
