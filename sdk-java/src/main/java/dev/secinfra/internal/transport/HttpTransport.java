package dev.secinfra.internal.transport;

import dev.secinfra.identity.IdentitySource;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * HTTPS/1.1 with keep-alive and two connection pools, each keeping idle connections per endpoint
 * (spec 12.1.4): one presenting the identity (mTLS), one
 * presenting none (spec 2.1, 8.6.3).
 *
 * <p>Why not {@code java.net.http.HttpClient}: it repeats a GET by itself when a pooled
 * connection is reset before the response (its "connection expired" retry), which would send
 * attempts the runtime never decided and break the retry rules and attempt counts (spec 3.1,
 * 2.4.2); and it cannot close idle connections of one identity. This small client sends exactly
 * one request per attempt and classifies every failure as before or after sending (spec 3.2).
 *
 * <p>Each pool belongs to one generation: an SSL context bound to the identity source. When a new
 * identity snapshot (mTLS pool) or bundle (both pools) is installed, the pool moves to a new
 * generation and closes its idle connections; a busy connection of an old generation is closed
 * when its response is read instead of going back to the pool.
 */
public final class HttpTransport {
  /** Idle connections kept per pool and endpoint (spec 12.1.4: a connection belongs to its endpoint). */
  public static final int MAX_IDLE_PER_POOL = 16;
  /** An idle connection older than this is closed rather than reused (the server's limit is 15 s). */
  public static final long IDLE_TIMEOUT_NANOS = 10_000_000_000L;
  private static final int MAX_HEADER_BYTES = 64 * 1024;

  /** How one attempt ended without a response. */
  public record Failure(
      boolean beforeSend, boolean timedOut, Tls.VerificationFailure verification, Throwable cause) {}

  /** One attempt's outcome: a response (status 100 to 599), or a failure. */
  public record Outcome(int status, Map<String, List<String>> headers, byte[] body, Failure failure) {
    /**
     * A header's first value.
     *
     * @param name the header name (case-insensitive)
     * @return the value or null
     */
    public String header(String name) {
      if (headers == null) {
        return null;
      }
      List<String> values = headers.get(name);
      return values == null || values.isEmpty() ? null : values.get(0);
    }
  }

  private final Pool mtls;
  private final Pool anonymous;

  /**
   * A transport.
   *
   * @param source the identity source asked on every handshake
   * @param serverId the SPIFFE ID the server must present
   */
  public HttpTransport(IdentitySource source, String serverId) {
    this.mtls = new Pool(source, serverId, true);
    this.anonymous = new Pool(source, serverId, false);
  }

  /** A new identity snapshot was installed: new mTLS connections; idle ones are closed. */
  public void identityChanged() {
    mtls.renew();
  }

  /** A new bundle was installed: both pools start afresh. */
  public void bundleChanged() {
    mtls.renew();
    anonymous.renew();
  }

  /** Closes every idle connection. */
  public void close() {
    mtls.renew();
    anonymous.renew();
  }

  /**
   * Sends one attempt; the whole attempt (connect, TLS, request, response) takes at most {@code
   * timeoutNanos}.
   *
   * @param presentIdentity use the mTLS pool
   * @param method the HTTP method
   * @param uri the URL
   * @param body the JSON body, or null
   * @param headers the request headers
   * @param timeoutNanos the attempt's timeout
   * @return the outcome
   */
  public Outcome send(
      boolean presentIdentity,
      String method,
      URI uri,
      byte[] body,
      Map<String, String> headers,
      long timeoutNanos) {
    long deadline = System.nanoTime() + Math.max(1, timeoutNanos);
    Pool pool = presentIdentity ? mtls : anonymous;
    Connection conn = pool.take(uri);
    if (conn == null) {
      try {
        conn = pool.open(uri, deadline);
      } catch (IOException e) {
        Tls.VerificationFailure verification = findVerification(e);
        if (verification != null) {
          return failure(new Failure(true, false, verification, e));
        }
        return failure(new Failure(true, e instanceof SocketTimeoutException, null, e));
      }
    }
    try {
      conn.write(request(method, uri, body, headers));
      Outcome outcome = conn.readResponse(method, deadline);
      if (conn.reusable) {
        pool.give(conn);
      } else {
        conn.close();
      }
      return outcome;
    } catch (IOException | RuntimeException e) {
      conn.close();
      return failure(new Failure(false, e instanceof SocketTimeoutException, null, e));
    }
  }

  private static Outcome failure(Failure failure) {
    return new Outcome(0, null, null, failure);
  }

  private static Tls.VerificationFailure findVerification(Throwable error) {
    for (Throwable t = error; t != null; t = t.getCause()) {
      if (t instanceof Tls.VerificationFailure) {
        return (Tls.VerificationFailure) t;
      }
      for (Throwable s : t.getSuppressed()) {
        if (s instanceof Tls.VerificationFailure) {
          return (Tls.VerificationFailure) s;
        }
      }
    }
    return null;
  }

  private static byte[] request(String method, URI uri, byte[] body, Map<String, String> headers) {
    StringBuilder head = new StringBuilder();
    String target = uri.getRawPath() + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery());
    head.append(method).append(' ').append(target).append(" HTTP/1.1\r\n");
    head.append("Host: ").append(uri.getHost());
    if (uri.getPort() > 0) {
      head.append(':').append(uri.getPort());
    }
    head.append("\r\n");
    for (Map.Entry<String, String> header : headers.entrySet()) {
      head.append(header.getKey()).append(": ").append(header.getValue()).append("\r\n");
    }
    if (body != null) {
      head.append("Content-Length: ").append(body.length).append("\r\n");
    }
    head.append("\r\n");
    byte[] headBytes = head.toString().getBytes(StandardCharsets.UTF_8);
    if (body == null) {
      return headBytes;
    }
    byte[] all = new byte[headBytes.length + body.length];
    System.arraycopy(headBytes, 0, all, 0, headBytes.length);
    System.arraycopy(body, 0, all, headBytes.length, body.length);
    return all;
  }

  /** One pool: a generation's SSL context and its idle connections. */
  private static final class Pool {
    private final IdentitySource source;
    private final String serverId;
    private final boolean presentIdentity;
    /** Idle connections by endpoint ({@code host:port}): a connection serves only its own. */
    private final Map<String, Deque<Connection>> idle = new HashMap<>();
    private SSLContext context;
    private long generation;

    Pool(IdentitySource source, String serverId, boolean presentIdentity) {
      this.source = source;
      this.serverId = serverId;
      this.presentIdentity = presentIdentity;
      this.context = newContext();
    }

    private SSLContext newContext() {
      try {
        return Tls.context(source, serverId, presentIdentity);
      } catch (GeneralSecurityException e) {
        throw new IllegalStateException("secinfra: transport: TLS setup failed", e);
      }
    }

    void renew() {
      List<Connection> closing;
      SSLContext next = newContext();
      synchronized (this) {
        context = next;
        generation++;
        closing = new ArrayList<>();
        idle.values().forEach(closing::addAll);
        idle.clear();
      }
      closing.forEach(Connection::close);
    }

    Connection take(URI uri) {
      String endpoint = authority(uri);
      while (true) {
        Connection conn;
        synchronized (this) {
          Deque<Connection> connections = idle.get(endpoint);
          conn = connections == null ? null : connections.pollLast();
        }
        if (conn == null) {
          return null;
        }
        if (System.nanoTime() - conn.idleSince < IDLE_TIMEOUT_NANOS && conn.alive()) {
          return conn;
        }
        conn.close();
      }
    }

    void give(Connection conn) {
      boolean keep;
      synchronized (this) {
        Deque<Connection> connections = idle.computeIfAbsent(conn.endpoint, k -> new ArrayDeque<>());
        keep = conn.generation == generation && connections.size() < MAX_IDLE_PER_POOL;
        if (keep) {
          conn.idleSince = System.nanoTime();
          connections.addLast(conn);
        }
      }
      if (!keep) {
        conn.close();
      }
    }

    Connection open(URI uri, long deadline) throws IOException {
      SSLContext ctx;
      long gen;
      synchronized (this) {
        ctx = context;
        gen = generation;
      }
      int port = uri.getPort() > 0 ? uri.getPort() : 443;
      Socket plain = new Socket();
      try {
        plain.setTcpNoDelay(true);
        plain.connect(new InetSocketAddress(uri.getHost(), port), remainingMillis(deadline));
      } catch (IOException e) {
        plain.close();
        throw e;
      }
      SSLSocket ssl = (SSLSocket) ctx.getSocketFactory().createSocket(plain, uri.getHost(), port, true);
      try {
        SSLParameters params = ssl.getSSLParameters();
        params.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
        params.setEndpointIdentificationAlgorithm(null);
        ssl.setSSLParameters(params);
        ssl.setSoTimeout(remainingMillis(deadline));
        ssl.startHandshake();
      } catch (IOException | RuntimeException e) {
        ssl.close();
        throw e;
      }
      return new Connection(ssl, gen, authority(uri));
    }
  }

  /** The pool key of a URL's endpoint: {@code host:port}, the host lowercased. */
  static String authority(URI uri) {
    int port = uri.getPort() > 0 ? uri.getPort() : 443;
    return uri.getHost().toLowerCase(Locale.ROOT) + ":" + port;
  }

  static int remainingMillis(long deadline) throws SocketTimeoutException {
    long left = deadline - System.nanoTime();
    if (left <= 0) {
      throw new SocketTimeoutException("secinfra: transport: the attempt timed out");
    }
    return (int) Math.max(1, Math.min(Integer.MAX_VALUE, (left + 999_999) / 1_000_000));
  }

  /** One keep-alive connection. */
  private static final class Connection {
    private final SSLSocket socket;
    private final InputStream in;
    private final OutputStream out;
    private final long generation;
    private final String endpoint;
    private final byte[] buffer = new byte[16 * 1024];
    private int position;
    private int limit;
    private long deadline = Long.MAX_VALUE;
    private long idleSince;
    private boolean reusable;

    Connection(SSLSocket socket, long generation, String endpoint) throws IOException {
      this.socket = socket;
      this.endpoint = endpoint;
      this.in = socket.getInputStream();
      this.out = socket.getOutputStream();
      this.generation = generation;
    }

    boolean alive() {
      if (position < limit) {
        return false;
      }
      try {
        socket.setSoTimeout(1);
        int n = in.read(buffer, 0, buffer.length);
        if (n < 0) {
          return false;
        }
        position = 0;
        limit = n;
        return false;
      } catch (SocketTimeoutException e) {
        return true;
      } catch (IOException e) {
        return false;
      }
    }

    void write(byte[] request) throws IOException {
      out.write(request);
      out.flush();
    }

    private int fill() throws IOException {
      socket.setSoTimeout(remainingMillis(deadline));
      int n = in.read(buffer, 0, buffer.length);
      if (n > 0) {
        position = 0;
        limit = n;
      }
      return n;
    }

    private int readByte() throws IOException {
      if (position >= limit && fill() <= 0) {
        return -1;
      }
      return buffer[position++] & 0xff;
    }

    private String readLine() throws IOException {
      ByteArrayOutputStream line = new ByteArrayOutputStream();
      while (true) {
        int b = readByte();
        if (b < 0) {
          throw new EOFException("secinfra: transport: connection closed before the full response");
        }
        if (b == '\n') {
          break;
        }
        line.write(b);
        if (line.size() > MAX_HEADER_BYTES) {
          throw new IOException("secinfra: transport: response header too long");
        }
      }
      String text = line.toString(StandardCharsets.ISO_8859_1);
      return text.endsWith("\r") ? text.substring(0, text.length() - 1) : text;
    }

    private void readFully(byte[] target, int offset, int length) throws IOException {
      int done = 0;
      while (done < length) {
        if (position >= limit && fill() <= 0) {
          throw new EOFException("secinfra: transport: response body truncated");
        }
        int n = Math.min(length - done, limit - position);
        System.arraycopy(buffer, position, target, offset + done, n);
        position += n;
        done += n;
      }
    }

    Outcome readResponse(String method, long attemptDeadline) throws IOException {
      this.deadline = attemptDeadline;
      reusable = false;
      String statusLine;
      int status;
      Map<String, List<String>> headers;
      do {
        statusLine = readLine();
        String[] parts = statusLine.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
          throw new IOException("secinfra: transport: malformed status line");
        }
        try {
          status = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
          throw new IOException("secinfra: transport: malformed status line", e);
        }
        headers = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        int total = 0;
        while (true) {
          String line = readLine();
          if (line.isEmpty()) {
            break;
          }
          total += line.length();
          if (total > MAX_HEADER_BYTES) {
            throw new IOException("secinfra: transport: response headers too long");
          }
          int colon = line.indexOf(':');
          if (colon <= 0) {
            continue;
          }
          headers
              .computeIfAbsent(line.substring(0, colon).strip(), k -> new ArrayList<>())
              .add(line.substring(colon + 1).strip());
        }
      } while (status >= 100 && status < 200 && status != 101);
      boolean http10 = statusLine.startsWith("HTTP/1.0");
      String connection = first(headers, "Connection");
      boolean close =
          http10 || (connection != null && connection.toLowerCase(Locale.ROOT).contains("close"));
      byte[] body;
      String transferEncoding = first(headers, "Transfer-Encoding");
      String contentLength = first(headers, "Content-Length");
      if (method.equals("HEAD") || status == 204 || status == 304) {
        body = new byte[0];
      } else if (transferEncoding != null
          && transferEncoding.toLowerCase(Locale.ROOT).contains("chunked")) {
        body = readChunked();
      } else if (contentLength != null) {
        long length;
        try {
          length = Long.parseLong(contentLength.strip());
        } catch (NumberFormatException e) {
          throw new IOException("secinfra: transport: malformed Content-Length", e);
        }
        if (length < 0 || length > 64L * 1024 * 1024) {
          throw new IOException("secinfra: transport: unacceptable Content-Length");
        }
        body = new byte[(int) length];
        readFully(body, 0, body.length);
      } else {
        body = readToEnd();
        close = true;
      }
      reusable = !close && position >= limit;
      Map<String, List<String>> frozen = Collections.unmodifiableMap(headers);
      return new Outcome(status, frozen, body, null);
    }

    private byte[] readChunked() throws IOException {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      while (true) {
        String sizeLine = readLine();
        int semi = sizeLine.indexOf(';');
        int size;
        try {
          size = Integer.parseInt((semi < 0 ? sizeLine : sizeLine.substring(0, semi)).strip(), 16);
        } catch (NumberFormatException e) {
          throw new IOException("secinfra: transport: malformed chunk size", e);
        }
        if (size == 0) {
          while (!readLine().isEmpty()) {
            // trailers are ignored
          }
          return body.toByteArray();
        }
        byte[] chunk = new byte[size];
        readFully(chunk, 0, size);
        body.write(chunk);
        readLine();
      }
    }

    private byte[] readToEnd() throws IOException {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      while (true) {
        if (position >= limit && fill() <= 0) {
          return body.toByteArray();
        }
        body.write(buffer, position, limit - position);
        position = limit;
      }
    }

    private static String first(Map<String, List<String>> headers, String name) {
      List<String> values = headers.get(name);
      return values == null || values.isEmpty() ? null : values.get(0);
    }

    void close() {
      try {
        socket.close();
      } catch (IOException e) {
        // closing anyway
      }
    }
  }

}
