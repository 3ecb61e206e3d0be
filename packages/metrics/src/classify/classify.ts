import { grpcStatusOf, type ParsedHeaders, readGrpcStatus, responseSuccess } from "@mesh/core";

/** Whether a response or connection counts as a success or a failure. */
export type Classification = "success" | "failure";

/**
 * Absent gRPC status (plain HTTP, or gRPC without a status yet). The recorders take gRPC
 * statuses as plain numbers, -1 for none, so the hot path stays monomorphic.
 */
export const NO_GRPC_STATUS = -1;

/**
 * The `classification` label: `@mesh/core`'s `responseSuccess` rule (Linkerd's): a gRPC
 * status decides when present, otherwise 5xx and no status at all (0) are failures.
 */
export function classifyResponse(status: number, grpcStatus: number): Classification {
  return responseSuccess.response(status, grpcStatus >= 0 ? grpcStatus : undefined);
}

/** `grpc-status` from response headers or trailers, or {@link NO_GRPC_STATUS}. */
export function grpcStatusIn(headers: ParsedHeaders): number {
  return grpcStatusOf(headers) ?? NO_GRPC_STATUS;
}

/** One `grpc-status` value (as `getHeader` returns it), or {@link NO_GRPC_STATUS}. */
export function grpcStatusValue(value: string | string[] | number | undefined): number {
  return readGrpcStatus(value) ?? NO_GRPC_STATUS;
}
