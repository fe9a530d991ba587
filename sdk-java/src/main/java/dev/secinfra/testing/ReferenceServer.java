package dev.secinfra.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.SecinfraClient;
import dev.secinfra.gen.CreateJoinTokenRequest;
import dev.secinfra.gen.TupleKey;
import dev.secinfra.gen.WriteTuplesRequest;
import dev.secinfra.identity.StaticIdentitySource;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.rpc.Wire;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The real reference server in test mode on a free loopback port, with a fresh data directory
 * that {@link #close()} deletes (as sdk-python's {@code secinfra.testing.ReferenceServer} and
 * sdk-go's {@code secinfratest.Server}). The server command comes from {@code SECINFRA_REFERENCE_SERVER},
 * else {@code secinfra-server} on PATH. Test mode is loopback-only: never point this at a
 * production server.
 *
 * <pre>{@code
 * try (ReferenceServer server = ReferenceServer.start("--leaf-ttl-seconds", "10");
 *     SecinfraClient client = server.enrolling("spiffe://secinfra.local/billing").build()) {
 *   server.script("GetSecret", "[{\"status\": 503}]");
 *   ...
 * }
 * }</pre>
 */
public final class ReferenceServer implements AutoCloseable {
  private static final long STARTUP_SECONDS = 60;

  private final Path dataDir;
  private final Process process;
  private final Deque<String> logs = new ArrayDeque<>();
  private volatile String url;

  private ReferenceServer(Path dataDir, Process process) {
    this.dataDir = dataDir;
    this.process = process;
  }

  /**
   * Inits a fresh data directory and starts serving on a free loopback port; returns once the
   * server logs that it is serving (at most 60 s).
   *
   * @param flags extra server flags, for example {@code "--leaf-ttl-seconds", "3"}
   * @return the running server
   * @throws Exception when the server does not start
   */
  public static ReferenceServer start(String... flags) throws Exception {
    String command = System.getenv().getOrDefault("SECINFRA_REFERENCE_SERVER", "secinfra-server");
    Path dir = Files.createTempDirectory("secinfra-java-test-");
    List<String> common = new ArrayList<>(List.of(
        "--data-dir", dir.toString(), "--host", "127.0.0.1", "--port", "0", "--test-hooks"));
    common.addAll(List.of(flags));
    List<String> init = new ArrayList<>(List.of(command, "init"));
    init.addAll(common);
    Process initProcess = new ProcessBuilder(init).redirectErrorStream(true).start();
    String initOutput = new String(initProcess.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!initProcess.waitFor(STARTUP_SECONDS, TimeUnit.SECONDS) || initProcess.exitValue() != 0) {
      throw new IllegalStateException("reference server init failed:\n" + initOutput);
    }
    List<String> serve = new ArrayList<>(List.of(command, "serve"));
    serve.addAll(common);
    Process process =
        new ProcessBuilder(serve).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    ReferenceServer server = new ReferenceServer(dir, process);
    CountDownLatch ready = new CountDownLatch(1);
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader in =
                  new BufferedReader(
                      new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                  synchronized (server.logs) {
                    server.logs.addLast(line);
                    if (server.logs.size() > 200) {
                      server.logs.removeFirst();
                    }
                  }
                  if (server.url == null && line.startsWith("{")) {
                    JsonNode record = Wire.MAPPER.readTree(line);
                    if ("serving".equals(record.path("message").asText())
                        && record.hasNonNull("url")) {
                      server.url = record.get("url").asText();
                      ready.countDown();
                    }
                  }
                }
              } catch (IOException e) {
                // the server exited
              } finally {
                ready.countDown();
              }
            },
            "reference-server-logs");
    reader.setDaemon(true);
    reader.start();
    if (!ready.await(STARTUP_SECONDS, TimeUnit.SECONDS) || server.url == null) {
      server.close();
      throw new IllegalStateException("reference server did not start:\n" + server.logTail());
    }
    return server;
  }

  private String logTail() {
    synchronized (logs) {
      return String.join("\n", logs);
    }
  }

  /**
   * The server URL.
   *
   * @return https://127.0.0.1:PORT
   */
  public String url() {
    return url;
  }

  /**
   * The PEM bundle written by init.
   *
   * @return the file
   */
  public Path bundleFile() {
    return dataDir.resolve("admin").resolve("bundle.pem");
  }

  /**
   * The admin identity written by init, as a static identity source.
   *
   * @return the source
   */
  public StaticIdentitySource adminSource() {
    Path admin = dataDir.resolve("admin");
    return StaticIdentitySource.fromFiles(
        admin.resolve("cert.pem"), admin.resolve("key.pem"), bundleFile());
  }

  /**
   * A client with the admin identity.
   *
   * @return the client
   */
  public SecinfraClient admin() {
    Path admin = dataDir.resolve("admin");
    return SecinfraClient.fromFiles(
        url, admin.resolve("cert.pem"), admin.resolve("key.pem"), bundleFile());
  }

  /**
   * A one-time join token for a SPIFFE ID.
   *
   * @param spiffeId the ID
   * @return the token
   */
  public String joinToken(String spiffeId) {
    try (SecinfraClient admin = admin()) {
      return admin
          .identity()
          .createJoinToken(
              CreateJoinTokenRequest.builder().spiffeId(spiffeId).ttlSeconds(600).build())
          .token();
    }
  }

  /**
   * Writes the tuple {@code workload:<spiffeId> <relation> <object>} as the admin.
   *
   * @param spiffeId the workload's ID
   * @param relation for example {@code reader}
   * @param object for example {@code folder:payments/}
   * @return the write's revision
   */
  public String grant(String spiffeId, String relation, String object) {
    try (SecinfraClient admin = admin()) {
      return admin
          .authz()
          .writeTuples(
              WriteTuplesRequest.builder()
                  .writes(List.of(new TupleKey("workload:" + spiffeId, relation, object, null)))
                  .build())
          .revision();
    }
  }

  /**
   * A client builder with the bundle and a fresh join token for {@code spiffeId}.
   *
   * @param spiffeId the workload's ID
   * @return the builder
   */
  public SecinfraClient.Builder enrolling(String spiffeId) {
    return SecinfraClient.builder(url).bundleFile(bundleFile()).joinToken(joinToken(spiffeId));
  }

  /**
   * Calls the test-mode control API ({@code /_test/...}) as the admin, once, without the
   * client's retries.
   *
   * @param method HTTP method
   * @param path for example {@code /_test/scripts}
   * @param body JSON body, or null
   * @return the answer's JSON
   * @throws Exception when the call fails or answers 300 or more
   */
  public JsonNode control(String method, String path, JsonNode body) throws Exception {
    StaticIdentitySource identity = adminSource();
    HttpTransport transport =
        new HttpTransport(
            identity,
            "spiffe://" + identity.bundle().trustDomain().orElseThrow() + "/secinfra/server");
    Map<String, String> headers = new LinkedHashMap<>();
    headers.put("Accept", "application/json");
    byte[] bytes = null;
    if (body != null) {
      headers.put("Content-Type", "application/json");
      bytes = Wire.MAPPER.writeValueAsBytes(body);
    }
    HttpTransport.Outcome outcome =
        transport.send(true, method, URI.create(url + path), bytes, headers, 10_000_000_000L);
    transport.close();
    if (outcome.failure() != null) {
      throw new IllegalStateException("control call failed", outcome.failure().cause());
    }
    if (outcome.status() >= 300) {
      throw new IllegalStateException(
          "control call answered " + outcome.status() + ": "
              + new String(outcome.body(), StandardCharsets.UTF_8));
    }
    return outcome.body().length == 0 ? Wire.object() : Wire.MAPPER.readTree(outcome.body());
  }

  /**
   * Queues scripted response steps for one RPC (status, headers, body, delay, reset).
   *
   * @param rpc the RPC name, for example {@code GetSecret}
   * @param steps the steps, as JSON array text
   * @throws Exception when the control call fails
   */
  public void script(String rpc, String steps) throws Exception {
    ObjectNode body = Wire.object();
    body.put("rpc", rpc);
    body.set("steps", Wire.MAPPER.readTree(steps));
    control("POST", "/_test/scripts", body);
  }

  /**
   * The server's request log for one RPC (headers, attempt, client certificate of each request).
   *
   * @param rpc the RPC name
   * @return the entries, oldest first
   * @throws Exception when the control call fails
   */
  public List<JsonNode> requests(String rpc) throws Exception {
    List<JsonNode> out = new ArrayList<>();
    control("GET", "/_test/requests?rpc=" + rpc, null).path("requests").forEach(out::add);
    return out;
  }

  /**
   * Stops the server (30 s grace, then killed) and deletes its data directory.
   *
   * @throws IOException when the data directory cannot be walked
   */
  @Override
  public void close() throws IOException {
    process.destroy();
    try {
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try (Stream<Path> files = Files.walk(dataDir)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
