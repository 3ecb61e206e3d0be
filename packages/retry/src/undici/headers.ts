/** The request header that marks one request retryable (`true`) or not (`false`). */
export const RETRYABLE_HEADER = "mesh-retryable";
