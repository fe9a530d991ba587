import dev.secinfra.SecinfraClient;
import dev.secinfra.gen.CheckRequest;
import dev.secinfra.gen.CheckResponse;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.Secret;
import dev.secinfra.gen.TupleKey;
import dev.secinfra.gen.WriteTuplesRequest;
import dev.secinfra.identity.SpiffeId;
import dev.secinfra.identity.StaticIdentitySource;
import dev.secinfra.mtls.Authorizers;
import dev.secinfra.mtls.MtlsContext;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.testing.ReferenceServer;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;
import javax.net.ssl.SSLContext;

/**
 * Per-call time through the Java SDK against the real reference server (issue 19, item 8): a cache
 * hit of getSecret and of check (target: at most 500 ns each), measured in-process in ns/op after
 * a warm-up (wall clock and the thread's CPU time), and an uncached getSecret against a raw {@code java.net.http.HttpClient} GET of the
 * same secret, each over one kept-alive mTLS connection with the same identity, taking turns in
 * rounds so that a busy machine slows both alike; the ratio sdk / raw is what the SDK adds to a
 * request (target: at most 1.1). Every figure is the median of the rounds. Prints JSON (and
 * writes it with --out FILE).
 *
 * <pre>
 * bash benchmarks/sdk_java_calls.sh --hits 200000 --requests 300 --out reports/bench/sdk_java_calls.json
 * </pre>
 */
final class SdkJavaCalls {
  /** Rounds per measurement; each figure is the median over them. */
  private static final int ROUNDS = 11;
  private static final String SECRET = "bench/hot";
  private static final byte[] VALUE = "hot-path-value".getBytes(StandardCharsets.UTF_8);

  public static void main(String[] args) throws Exception {
    int hits = 200_000;
    int requests = 300;
    Path out = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--hits" -> hits = Integer.parseInt(args[++i]);
        case "--requests" -> requests = Integer.parseInt(args[++i]);
        case "--out" -> out = Path.of(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    Map<String, Object> report = new LinkedHashMap<>();
    try (ReferenceServer server = ReferenceServer.start();
        SecinfraClient client = server.admin()) {
      client.secrets().putSecret(PutSecretRequest.builder().name(SECRET).value(VALUE).build());
      TupleKey tuple = new TupleKey("workload:spiffe://secinfra.local/bench", "reader", "secret:" + SECRET, null);
      client.authz().writeTuples(WriteTuplesRequest.builder().writes(List.of(tuple)).build());
      GetSecretRequest read = GetSecretRequest.builder().name(SECRET).build();
      CheckRequest check = CheckRequest.builder().tupleKey(tuple).build();
      if (!client.authz().check(check).allowed()) {
        throw new IllegalStateException("the benchmark's tuple does not allow");
      }

      int n = hits;
      double[][] secretHit =
          hitRounds(
              () -> {
                long sum = 0;
                for (int i = 0; i < n; i++) {
                  sum += client.secrets().getSecret(read).version();
                }
                sink(sum);
              },
              n);
      double[][] checkHit =
          hitRounds(
              () -> {
                long sum = 0;
                for (int i = 0; i < n; i++) {
                  sum += client.authz().check(check).allowed() ? 1 : 0;
                }
                sink(sum);
              },
              n);

      CallOptions uncached = CallOptions.builder().useCache(false).build();
      HttpClient raw = rawClient(server, client);
      HttpRequest rawRead =
          HttpRequest.newBuilder(URI.create(server.url() + "/v1/secrets/" + SECRET))
              .header("Accept", "application/json")
              .GET()
              .build();
      int m = requests;
      LongSupplier sdkRound =
          () -> {
            long sum = 0;
            long start = System.nanoTime();
            for (int i = 0; i < m; i++) {
              Secret s = client.secrets().getSecret(read, uncached);
              sum += s.value().length;
            }
            long elapsed = System.nanoTime() - start;
            sink(sum);
            return elapsed;
          };
      LongSupplier rawRound =
          () -> {
            long sum = 0;
            long start = System.nanoTime();
            try {
              for (int i = 0; i < m; i++) {
                HttpResponse<byte[]> r = raw.send(rawRead, HttpResponse.BodyHandlers.ofByteArray());
                if (r.statusCode() != 200) {
                  throw new IllegalStateException("raw GET answered " + r.statusCode());
                }
                sum += r.body().length;
              }
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
            long elapsed = System.nanoTime() - start;
            sink(sum);
            return elapsed;
          };
      // Warm-up of both, then alternating rounds.
      sdkRound.getAsLong();
      rawRound.getAsLong();
      double[] sdkUncached = new double[ROUNDS];
      double[] rawUncached = new double[ROUNDS];
      for (int r = 0; r < ROUNDS; r++) {
        sdkUncached[r] = (double) sdkRound.getAsLong() / m;
        rawUncached[r] = (double) rawRound.getAsLong() / m;
      }

      report.put("benchmark", "sdk_java_calls");
      report.put("java", System.getProperty("java.version"));
      report.put("rounds", ROUNDS);
      report.put("hits_per_round", hits);
      report.put("requests_per_round", requests);
      report.put("get_secret_hit_ns_per_op", summary(secretHit[0]));
      report.put("get_secret_hit_cpu_ns_per_op", summary(secretHit[1]));
      report.put("check_hit_ns_per_op", summary(checkHit[0]));
      report.put("check_hit_cpu_ns_per_op", summary(checkHit[1]));
      report.put("hit_target_ns", 500);
      report.put("get_secret_uncached_ns_per_op", summary(sdkUncached));
      report.put("raw_http_get_ns_per_op", summary(rawUncached));
      report.put(
          "uncached_ratio_sdk_over_raw",
          round3(median(sdkUncached) / median(rawUncached)));
      report.put("uncached_ratio_target", 1.1);
    }
    String json = toJson(report, "");
    System.out.println(json);
    if (out != null) {
      Files.createDirectories(out.toAbsolutePath().getParent());
      Files.writeString(out, json + "\n");
    }
  }

  /**
   * Two warm-up rounds and then {@link #ROUNDS} timed ones; each round's wall-clock and
   * thread-CPU ns per operation (the CPU figure is steadier on a machine busy with other work).
   */
  private static double[][] hitRounds(Runnable round, int ops) {
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    round.run();
    round.run();
    double[] wall = new double[ROUNDS];
    double[] cpu = new double[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
      long cpuStart = threads.getCurrentThreadCpuTime();
      long start = System.nanoTime();
      round.run();
      wall[r] = (double) (System.nanoTime() - start) / ops;
      cpu[r] = (double) (threads.getCurrentThreadCpuTime() - cpuStart) / ops;
    }
    return new double[][] {wall, cpu};
  }

  /**
   * A plain JDK HTTP/1.1 client presenting the SDK client's current identity, verifying the server
   * by chain and SPIFFE ID; it keeps its connection alive between requests.
   */
  private static HttpClient rawClient(ReferenceServer server, SecinfraClient client) {
    var source = StaticIdentitySource.of(client.source().snapshot(), client.source().bundle());
    SSLContext context =
        MtlsContext.create(source, Authorizers.id(SpiffeId.serverId("secinfra.local")));
    return HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .sslContext(context)
        .build();
  }

  private static volatile long sinkHole;

  private static void sink(long value) {
    sinkHole += value;
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int mid = sorted.length / 2;
    return sorted.length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  private static Map<String, Object> summary(double[] perOp) {
    double[] sorted = perOp.clone();
    Arrays.sort(sorted);
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("median", round1(median(perOp)));
    s.put("min", round1(sorted[0]));
    s.put("max", round1(sorted[sorted.length - 1]));
    return s;
  }

  private static double round1(double v) {
    return Math.round(v * 10) / 10.0;
  }

  private static double round3(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  @SuppressWarnings("unchecked")
  private static String toJson(Object value, String indent) {
    if (value instanceof Map<?, ?> map) {
      List<String> members = new ArrayList<>();
      String inner = indent + "  ";
      for (Map.Entry<?, ?> e : ((Map<String, Object>) map).entrySet()) {
        members.add(inner + "\"" + e.getKey() + "\": " + toJson(e.getValue(), inner));
      }
      return "{\n" + String.join(",\n", members) + "\n" + indent + "}";
    }
    if (value instanceof String s) {
      return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
    if (value instanceof Double d) {
      return String.format(Locale.ROOT, "%s", d);
    }
    return String.valueOf(value);
  }
}
