/**
 * Connections and TLS only: the HTTP/1.1 keep-alive client and its pools ({@link
 * dev.secinfra.internal.transport.HttpTransport}), handshakes with the current snapshot and the
 * server's chain and SPIFFE ID check ({@link dev.secinfra.internal.transport.Tls}).
 */
package dev.secinfra.internal.transport;
