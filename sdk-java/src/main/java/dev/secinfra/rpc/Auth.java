package dev.secinfra.rpc;

/** How an RPC authenticates, from its descriptor. */
public enum Auth {
  /** The client presents its identity snapshot (mutual TLS). */
  MTLS,
  /** No client certificate ({@code IssueCertificate}, {@code GetTrustBundle}, {@code GetCrl}). */
  NONE
}
