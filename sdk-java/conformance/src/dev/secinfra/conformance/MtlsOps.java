package dev.secinfra.conformance;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import dev.secinfra.conformance.gen.Failure;
import dev.secinfra.conformance.gen.MtlsAuthorizer;
import dev.secinfra.conformance.gen.MtlsCallRequest;
import dev.secinfra.conformance.gen.MtlsCallResult;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.mtls.Authorizer;
import dev.secinfra.mtls.Authorizers;
import dev.secinfra.mtls.MtlsContext;
import dev.secinfra.mtls.PeerId;
import dev.secinfra.mtls.PeerRefusedException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;

/**
 * The conformance client's mtls ops (feature {@code mtls}) on the SDK's {@code dev.secinfra.mtls}.
 *
 * <p>{@code mtls_serve} serves HTTPS with a JDK {@code HttpsServer} configured with an {@link
 * MtlsContext} and answers every request with the caller's SPIFFE ID as {@link PeerId} reads it;
 * {@code mtls_call} makes one GET over a new {@link SSLSocket} from an {@link MtlsContext}. Both
 * contexts are built on the configured client's rotating identity source, as an application
 * builds them (docs/mtls/java.md). docs/conformance/adapter-protocol.md is the contract.
 */
final class MtlsOps {
  /** The bound of an mtls_call without timeout_seconds. */
  private static final double DEFAULT_CALL_SECONDS = 10.0;

  /** An idle kept-alive connection stays open this long (the protocol asks for 30 s at least). */
  private static final int IDLE_SECONDS = 60;

  /** The largest response an mtls_call reads. */
  private static final int MAX_RESPONSE_BYTES = 1 << 20;

  /** The SDK's refusal rules, as the protocol names them. */
  private static final Map<PeerRefusedException.Rule, String> RULES =
      Map.of(
          PeerRefusedException.Rule.NO_CERTIFICATE, "x509_svid",
          PeerRefusedException.Rule.SPIFFE_ID, "x509_svid",
          PeerRefusedException.Rule.LEAF_IS_CA, "x509_svid",
          PeerRefusedException.Rule.TRUST_DOMAIN, "trust_domain",
          PeerRefusedException.Rule.VALIDITY, "validity",
          PeerRefusedException.Rule.CHAIN, "chain",
          PeerRefusedException.Rule.UNAUTHORIZED, "authorizer");

  /** The fields each authorizer kind takes. */
  private static final Map<String, Set<String>> KIND_FIELDS =
      Map.of(
          "id", Set.of("id"),
          "one_of", Set.of("ids"),
          "member_of", Set.of("trust_domain"),
          "path_prefix", Set.of("trust_domain", "prefix"));

  static {
    // Read once, when the JDK's HTTP server is first used: keep idle connections open longer
    // than the protocol's 30 s, so a connection made before a renewal can carry later requests.
    System.setProperty("sun.net.httpserver.idleInterval", Integer.toString(IDLE_SECONDS));
  }

  private MtlsOps() {}

  /** The runner sent an authorizer or URL the protocol does not allow. */
  static final class MalformedRequest extends Exception {
    private static final long serialVersionUID = 1L;

    MalformedRequest(String message) {
      super(message);
    }
  }

  /**
   * The SDK authorizer an MtlsAuthorizer names.
   *
   * @param spec the authorizer of the request
   * @return the SDK's authorizer of that kind
   * @throws MalformedRequest when the kind is unknown or its fields are not exactly the kind's
   */
  static Authorizer authorizer(MtlsAuthorizer spec) throws MalformedRequest {
    if (spec == null) {
      throw new MalformedRequest("give an authorizer");
    }
    Set<String> wanted = KIND_FIELDS.get(spec.kind());
    if (wanted == null) {
      throw new MalformedRequest(
          "unknown authorizer kind '" + spec.kind() + "' (known: " + KIND_FIELDS.keySet() + ")");
    }
    Set<String> given = new HashSet<>();
    if (spec.id() != null && !spec.id().isEmpty()) {
      given.add("id");
    }
    if (!spec.ids().isEmpty()) {
      given.add("ids");
    }
    if (spec.trustDomain() != null && !spec.trustDomain().isEmpty()) {
      given.add("trust_domain");
    }
    if (spec.prefix() != null && !spec.prefix().isEmpty()) {
      given.add("prefix");
    }
    if (!given.equals(wanted)) {
      throw new MalformedRequest(
          "authorizer kind '" + spec.kind() + "' takes " + wanted + ", got " + given);
    }
    switch (spec.kind()) {
      case "id":
        return Authorizers.id(spec.id());
      case "one_of":
        return Authorizers.oneOf(Set.copyOf(spec.ids()));
      case "member_of":
        return Authorizers.memberOf(spec.trustDomain());
      default:
        return Authorizers.pathPrefix(spec.trustDomain(), spec.prefix());
    }
  }

  /** An HTTPS server on 127.0.0.1 with an {@link MtlsContext}, until {@link #close()}. */
  static final class Server implements AutoCloseable {
    private final HttpsServer server;
    private final ExecutorService handlers = Executors.newCachedThreadPool(Server::daemon);

    Server(IdentitySource source, Authorizer allowed) throws IOException {
      SSLContext context = MtlsContext.create(source, allowed);
      server = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
      server.setHttpsConfigurator(new HttpsConfigurator(context));
      server.createContext("/", Server::answer);
      server.setExecutor(handlers);
      server.start();
    }

    private static Thread daemon(Runnable task) {
      Thread thread = new Thread(task, "mtls-serve");
      thread.setDaemon(true);
      return thread;
    }

    /** Every request: 200 with the caller's verified SPIFFE ID. */
    private static void answer(HttpExchange exchange) throws IOException {
      try (exchange) {
        exchange.getRequestBody().readAllBytes();
        String peer = PeerId.of(exchange);
        byte[] body =
            ("{\"peer_spiffe_id\": \"" + peer + "\"}").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(200, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
          out.write(body);
        }
      }
    }

    int port() {
      return server.getAddress().getPort();
    }

    /** Stops accepting and closes every connection the server holds. */
    @Override
    public void close() {
      server.stop(0);
      handlers.shutdownNow();
      try {
        handlers.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** What an mtls_call ended with: a result or a failure. */
  record Outcome(MtlsCallResult result, Failure failure) {}

  /**
   * One GET of {@code msg.url()} over a new mTLS connection, closed afterwards.
   *
   * @param source the identity the connection presents and the bundle it trusts
   * @param msg the request
   * @return the result, or the failure the protocol names
   * @throws MalformedRequest when the URL or authorizer is not one the protocol allows
   */
  static Outcome call(IdentitySource source, MtlsCallRequest msg) throws MalformedRequest {
    URI url;
    try {
      url = new URI(msg.url());
    } catch (URISyntaxException e) {
      throw new MalformedRequest("url must be https://127.0.0.1:<port>/..., got " + msg.url());
    }
    if (!"https".equals(url.getScheme()) || url.getHost() == null || url.getPort() < 0) {
      throw new MalformedRequest("url must be https://127.0.0.1:<port>/..., got " + msg.url());
    }
    SSLContext context = MtlsContext.create(source, authorizer(msg.authorizer()));
    double seconds = msg.timeoutSeconds() != null ? msg.timeoutSeconds() : DEFAULT_CALL_SECONDS;
    long deadline = System.nanoTime() + Math.round(seconds * 1e9);
    String path = url.getRawPath() == null || url.getRawPath().isEmpty() ? "/" : url.getRawPath();
    try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket()) {
      try {
        socket.connect(new InetSocketAddress(url.getHost(), url.getPort()), remaining(deadline));
        socket.setSoTimeout(remaining(deadline));
        socket.startHandshake();
      } catch (SocketTimeoutException | ConnectException e) {
        return failed("TransportError", e, null);
      } catch (IOException e) {
        PeerRefusedException refused = refusal(e);
        if (refused != null) {
          return failed("PeerRefused", refused, RULES.get(refused.rule()));
        }
        return failed("HandshakeFailed", e, null);
      }
      SSLSession session = socket.getSession();
      String server;
      try {
        server = PeerId.of(session);
      } catch (IOException e) {
        return failed("HandshakeFailed", e, null);
      }
      String presented = presentedSerial(session);
      try {
        socket.setSoTimeout(remaining(deadline));
        OutputStream out = socket.getOutputStream();
        String request =
            "GET "
                + path
                + " HTTP/1.1\r\nHost: "
                + url.getHost()
                + ":"
                + url.getPort()
                + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        out.write(request.getBytes(StandardCharsets.US_ASCII));
        out.flush();
        Response response = Response.read(socket.getInputStream());
        return new Outcome(
            new MtlsCallResult(response.status(), response.body(), server, presented), null);
      } catch (SocketTimeoutException e) {
        return failed("TransportError", e, null);
      } catch (IOException e) {
        // TLS 1.3: the server checks this client after the client's handshake ended, so its
        // refusal arrives as an alert or a close on the first read.
        return failed("HandshakeFailed", e, null);
      }
    } catch (IOException e) {
      return failed("TransportError", e, null);
    }
  }

  /** Milliseconds left until {@code deadline} (at least 1: 0 means "no timeout" to sockets). */
  private static int remaining(long deadline) throws SocketTimeoutException {
    long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    if (left <= 0) {
      throw new SocketTimeoutException("no answer within the call's timeout");
    }
    return (int) Math.min(Integer.MAX_VALUE, left);
  }

  /** The certificate this client presented on the connection, its serial as the SDK writes it. */
  private static String presentedSerial(SSLSession session) {
    Certificate[] local = session.getLocalCertificates();
    if (local == null || local.length == 0 || !(local[0] instanceof X509Certificate)) {
      return "";
    }
    return ((X509Certificate) local[0]).getSerialNumber().toString(16).toLowerCase(Locale.ROOT);
  }

  /** The SDK's refusal in the cause chain of a failed handshake, if it refused the server. */
  private static PeerRefusedException refusal(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof PeerRefusedException) {
        return (PeerRefusedException) t;
      }
    }
    return null;
  }

  private static Outcome failed(String type, Exception e, String code) {
    Failure failure =
        Failure.builder()
            .type(type)
            .code(code)
            .message(e.getClass().getSimpleName() + ": " + e.getMessage())
            .build();
    return new Outcome(null, failure);
  }

  /** An HTTP/1.1 response read to its end: by Content-Length, chunks, or the connection's close. */
  private record Response(int status, String body) {
    static Response read(InputStream in) throws IOException {
      String statusLine = line(in);
      if (statusLine == null) {
        throw new IOException("the server closed the connection before answering");
      }
      String[] parts = statusLine.split(" ", 3);
      if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
        throw new IOException("not an HTTP/1.1 status line: " + statusLine);
      }
      int status;
      try {
        status = Integer.parseInt(parts[1]);
      } catch (NumberFormatException e) {
        throw new IOException("not an HTTP status: " + parts[1], e);
      }
      long length = -1;
      boolean chunked = false;
      for (String header = line(in); header != null && !header.isEmpty(); header = line(in)) {
        int colon = header.indexOf(':');
        if (colon < 0) {
          continue;
        }
        String name = header.substring(0, colon).trim().toLowerCase(Locale.ROOT);
        String value = header.substring(colon + 1).trim();
        if (name.equals("content-length")) {
          length = Long.parseLong(value);
        } else if (name.equals("transfer-encoding")) {
          chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
        }
      }
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      if (chunked) {
        for (long size = chunkSize(in); size > 0; size = chunkSize(in)) {
          copy(in, body, size);
          line(in);
        }
      } else if (length >= 0) {
        copy(in, body, length);
      } else {
        copy(in, body, MAX_RESPONSE_BYTES);
      }
      return new Response(status, body.toString(StandardCharsets.UTF_8));
    }

    private static long chunkSize(InputStream in) throws IOException {
      String size = line(in);
      if (size == null) {
        throw new IOException("the response ended inside its chunks");
      }
      int ext = size.indexOf(';');
      return Long.parseLong((ext < 0 ? size : size.substring(0, ext)).trim(), 16);
    }

    /** Copies {@code count} bytes (or to the end of the stream, at most the limit). */
    private static void copy(InputStream in, ByteArrayOutputStream out, long count)
        throws IOException {
      if (count > MAX_RESPONSE_BYTES) {
        throw new IOException("the response is larger than " + MAX_RESPONSE_BYTES + " bytes");
      }
      byte[] buffer = new byte[8192];
      long left = count;
      while (left > 0) {
        int n = in.read(buffer, 0, (int) Math.min(buffer.length, left));
        if (n < 0) {
          break;
        }
        out.write(buffer, 0, n);
        left -= n;
      }
    }

    /** One CRLF-terminated line without its CRLF; null at the end of the stream. */
    private static String line(InputStream in) throws IOException {
      StringBuilder line = new StringBuilder();
      for (int b = in.read(); b >= 0; b = in.read()) {
        if (b == '\n') {
          int end = line.length();
          if (end > 0 && line.charAt(end - 1) == '\r') {
            line.setLength(end - 1);
          }
          return line.toString();
        }
        if (line.length() > 8192) {
          throw new IOException("a response line longer than 8 KiB");
        }
        line.append((char) b);
      }
      return line.length() == 0 ? null : line.toString();
    }
  }
}
