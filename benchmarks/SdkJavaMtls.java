import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.Pem;
import dev.secinfra.identity.StaticIdentitySource;
import dev.secinfra.mtls.Authorizers;
import dev.secinfra.mtls.MtlsContext;
import dev.secinfra.testing.TestAuthority;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * Service-to-service mTLS in the Java SDK (issue 16, item 4): full handshakes per second and
 * requests per second over one kept-alive connection, with the SDK's MtlsContext on both sides
 * against the JDK's plain TLS set up from static PEM files (PKCS12 key store, PKIX key and trust
 * managers), measured in one run, alternating the two in rounds so that a busy machine slows both
 * alike. Every handshake is a full one in both setups (the SDK never resumes; the plain client
 * drops each session). A request is 64 bytes each way over SSLSocket, so the request rate is
 * TLS record cost. Prints JSON (and writes it with --out FILE).
 *
 * <pre>
 * bash benchmarks/sdk_java_mtls.sh --handshakes 1500 --requests 30000 --out reports/bench/sdk_java_mtls.json
 * </pre>
 */
final class SdkJavaMtls {
  private static final int MESSAGE = 64;
  /** Rounds per measurement; each side's rate is the median over them. */
  private static final int ROUNDS = 15;

  public static void main(String[] args) throws Exception {
    int handshakes = 1500;
    int requests = 30000;
    Path out = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--handshakes" -> handshakes = Integer.parseInt(args[++i]);
        case "--requests" -> requests = Integer.parseInt(args[++i]);
        case "--out" -> out = Path.of(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    TestAuthority ca = TestAuthority.create("secinfra.local");
    IdentitySnapshot serverId = ca.snapshot("spiffe://secinfra.local/bench/server");
    IdentitySnapshot clientId = ca.snapshot("spiffe://secinfra.local/bench/client");

    SSLContext sdkServer =
        MtlsContext.create(
            StaticIdentitySource.of(serverId, ca.bundle()), Authorizers.id(clientId.spiffeId()));
    SSLContext sdkClient =
        MtlsContext.create(
            StaticIdentitySource.of(clientId, ca.bundle()), Authorizers.id(serverId.spiffeId()));
    Path dir = Files.createTempDirectory("sdk-java-mtls-bench-");
    SSLContext plainServer;
    SSLContext plainClient;
    try {
      plainServer = plainContext(writeFiles(dir, "server", serverId, ca));
      plainClient = plainContext(writeFiles(dir, "client", clientId, ca));
    } finally {
      try (var files = Files.walk(dir)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }

    double[] sdkHandshakes = new double[ROUNDS];
    double[] plainHandshakes = new double[ROUNDS];
    double[] sdkRequests = new double[ROUNDS];
    double[] plainRequests = new double[ROUNDS];
    try (Server sdk = new Server(sdkServer); Server plain = new Server(plainServer)) {
      handshakeRate(sdkClient, sdk, handshakes / 5, false); // warm-up
      handshakeRate(plainClient, plain, handshakes / 5, true);
      requestRate(sdkClient, sdk, requests / 5);
      requestRate(plainClient, plain, requests / 5);
      int handshakesPerRound = Math.max(1, handshakes / ROUNDS);
      int requestsPerRound = Math.max(1, requests / ROUNDS);
      for (int round = 0; round < ROUNDS; round++) {
        // Which side goes first alternates, so neither always meets a cold or busy moment.
        boolean sdkFirst = round % 2 == 0;
        for (int side = 0; side < 2; side++) {
          if ((side == 0) == sdkFirst) {
            sdkHandshakes[round] = handshakeRate(sdkClient, sdk, handshakesPerRound, false);
            sdkRequests[round] = requestRate(sdkClient, sdk, requestsPerRound);
          } else {
            plainHandshakes[round] = handshakeRate(plainClient, plain, handshakesPerRound, true);
            plainRequests[round] = requestRate(plainClient, plain, requestsPerRound);
          }
        }
      }
    }

    Map<String, Object> report = new LinkedHashMap<>();
    report.put("benchmark", "sdk_java_mtls");
    report.put("java", System.getProperty("java.version"));
    report.put("handshakes_per_side", handshakes);
    report.put("requests_per_side", requests);
    report.put("rounds", ROUNDS);
    report.put("full_handshakes_per_second", rates(sdkHandshakes, plainHandshakes));
    report.put("kept_alive_requests_per_second", rates(sdkRequests, plainRequests));
    String json = toJson(report);
    System.out.println(json);
    if (out != null) {
      Files.createDirectories(out.toAbsolutePath().getParent());
      Files.writeString(out, json + "\n", StandardCharsets.UTF_8);
    }
  }

  /** The median of each side over the rounds, and sdk / plain. */
  private static Map<String, Object> rates(double[] sdk, double[] plain) {
    Map<String, Object> rates = new LinkedHashMap<>();
    double sdkMedian = median(sdk);
    double plainMedian = median(plain);
    rates.put("sdk", round(sdkMedian));
    rates.put("plain", round(plainMedian));
    rates.put("ratio", Math.round(sdkMedian / plainMedian * 1000) / 1000.0);
    return rates;
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    java.util.Arrays.sort(sorted);
    return sorted[sorted.length / 2];
  }

  private static double round(double value) {
    return Math.round(value * 10) / 10.0;
  }

  /** New connections, each a full handshake and one request, then closed. */
  private static double handshakeRate(SSLContext client, Server server, int count, boolean dropSession)
      throws IOException {
    long start = System.nanoTime();
    for (int i = 0; i < count; i++) {
      try (SSLSocket socket = server.connect(client)) {
        socket.startHandshake();
        exchange(socket);
        if (dropSession) {
          socket.getSession().invalidate();
        }
      }
    }
    return count / ((System.nanoTime() - start) / 1e9);
  }

  /** Requests over one kept-alive connection. */
  private static double requestRate(SSLContext client, Server server, int count) throws IOException {
    try (SSLSocket socket = server.connect(client)) {
      socket.startHandshake();
      exchange(socket);
      long start = System.nanoTime();
      for (int i = 0; i < count; i++) {
        exchange(socket);
      }
      return count / ((System.nanoTime() - start) / 1e9);
    }
  }

  private static final byte[] REQUEST = new byte[MESSAGE];

  private static void exchange(SSLSocket socket) throws IOException {
    OutputStream out = socket.getOutputStream();
    out.write(REQUEST);
    out.flush();
    new DataInputStream(socket.getInputStream()).readFully(new byte[MESSAGE]);
  }

  /** The plain setup: PEM files into a PKCS12 store, the JDK's PKIX key and trust managers. */
  private static SSLContext plainContext(Path[] files) throws Exception {
    List<X509Certificate> chain = Pem.parseCertificates(Files.readString(files[0]));
    PrivateKey key = Pem.parsePrivateKey(Files.readString(files[1]));
    List<X509Certificate> cas = Pem.parseCertificates(Files.readString(files[2]));
    char[] password = "bench".toCharArray();
    KeyStore identity = KeyStore.getInstance("PKCS12");
    identity.load(null, null);
    identity.setKeyEntry("identity", key, password, chain.toArray(new X509Certificate[0]));
    KeyManagerFactory keys = KeyManagerFactory.getInstance("PKIX");
    keys.init(identity, password);
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    for (int i = 0; i < cas.size(); i++) {
      trust.setCertificateEntry("ca-" + i, cas.get(i));
    }
    TrustManagerFactory trusted = TrustManagerFactory.getInstance("PKIX");
    trusted.init(trust);
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(keys.getKeyManagers(), trusted.getTrustManagers(), new SecureRandom());
    return context;
  }

  private static Path[] writeFiles(Path dir, String name, IdentitySnapshot snapshot, TestAuthority ca)
      throws IOException {
    Path cert = dir.resolve(name + "-cert.pem");
    Path key = dir.resolve(name + "-key.pem");
    Path bundle = dir.resolve("bundle.pem");
    Files.writeString(cert, Pem.encodeCertificates(snapshot.chain()));
    Files.writeString(key, Pem.encode("PRIVATE KEY", snapshot.key().getEncoded()));
    Files.writeString(bundle, ca.bundle().toPem());
    return new Path[] {cert, key, bundle};
  }

  private static String toJson(Map<String, Object> map) {
    List<String> fields = new ArrayList<>();
    for (Map.Entry<String, Object> entry : map.entrySet()) {
      Object value = entry.getValue();
      String text;
      if (value instanceof Map<?, ?> nested) {
        @SuppressWarnings("unchecked")
        Map<String, Object> inner = (Map<String, Object>) nested;
        text = toJson(inner);
      } else if (value instanceof String string) {
        text = "\"" + string + "\"";
      } else {
        text = String.format(Locale.ROOT, "%s", value);
      }
      fields.add("\"" + entry.getKey() + "\": " + text);
    }
    return "{" + String.join(", ", fields) + "}";
  }

  /** An SSLServerSocket answering 64-byte requests, one thread per connection, client auth required. */
  private static final class Server implements AutoCloseable {
    private final SSLServerSocket listener;
    private final ExecutorService threads = Executors.newCachedThreadPool();

    Server(SSLContext context) throws IOException {
      listener =
          (SSLServerSocket)
              context.getServerSocketFactory().createServerSocket(0, 64, InetAddress.getLoopbackAddress());
      listener.setNeedClientAuth(true);
      threads.execute(this::acceptLoop);
    }

    SSLSocket connect(SSLContext client) throws IOException {
      SSLSocket socket =
          (SSLSocket) client.getSocketFactory().createSocket(listener.getInetAddress(), listener.getLocalPort());
      socket.setTcpNoDelay(true);
      return socket;
    }

    private void acceptLoop() {
      while (!listener.isClosed()) {
        try {
          SSLSocket peer = (SSLSocket) listener.accept();
          peer.setTcpNoDelay(true);
          threads.execute(() -> serve(peer));
        } catch (IOException e) {
          return;
        }
      }
    }

    private static void serve(SSLSocket peer) {
      try (peer) {
        InputStream in = peer.getInputStream();
        OutputStream out = peer.getOutputStream();
        byte[] buffer = new byte[MESSAGE];
        while (true) {
          int read = 0;
          while (read < MESSAGE) {
            int n = in.read(buffer, read, MESSAGE - read);
            if (n < 0) {
              return;
            }
            read += n;
          }
          out.write(buffer);
          out.flush();
        }
      } catch (IOException e) {
        // the client closed the connection
      }
    }

    @Override
    public void close() throws IOException {
      listener.close();
      threads.shutdownNow();
    }
  }
}
