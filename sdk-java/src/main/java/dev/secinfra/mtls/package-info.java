/**
 * Service-to-service mTLS for the application's own connections: an {@link
 * javax.net.ssl.SSLContext} built by {@link dev.secinfra.mtls.MtlsContext} from an {@link
 * dev.secinfra.identity.IdentitySource} and an {@link dev.secinfra.mtls.Authorizer} ({@link
 * dev.secinfra.mtls.Authorizers}), usable with {@code java.net.http.HttpClient}, {@code
 * HttpsURLConnection}, {@code SSLServerSocket}, {@code com.sun.net.httpserver.HttpsServer} and any
 * framework that takes an {@code SSLContext}. Every handshake presents the source's current SVID
 * and verifies the peer against its current trust bundle, so renewals and CA rotations need no
 * restart; {@link dev.secinfra.mtls.PeerId} reads the verified peer's SPIFFE ID in a handler, and
 * a refusal is a {@link dev.secinfra.mtls.PeerRefusedException} that names the failed rule.
 */
package dev.secinfra.mtls;
