export { STAT_HELP, type StatIo, type StatMainOptions, statMain } from "./cli.js";
export {
  computeProxyStat,
  type EndpointStat,
  type MtlsStatus,
  type ProxyStat,
  type TrafficStat,
} from "./compute.js";
export { type EndpointTotals, endpointTotals } from "./endpoints.js";
export { StatError, type StatErrorCode } from "./errors.js";
export { formatMs, formatPercent, formatRps, renderColumns, renderStatTable } from "./format.js";
export { parsePrometheusText, type Sample } from "./prometheus.js";
export { type AdminScrape, type ScrapeOptions, scrapeAdmin } from "./scrape.js";
export { ScrapeHistory, type StatReport, scrapeAll, statReport } from "./stat.js";
export { type AdminTarget, parseAdminTargets } from "./target.js";
export { type TrafficTotals, trafficKey, trafficTotals } from "./totals.js";
