package dev.secinfra.mtls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import dev.secinfra.SecinfraClient;
import dev.secinfra.testing.ReferenceServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The examples of docs/mtls/java.md, as the guide shows them: a service that serves mTLS to one
 * caller and a caller that calls it, both enrolled with the real reference server. A change here
 * is a change to the guide.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MtlsGuideTest {
  @Test
  void guideExamplesServeAndCall() throws Exception {
    try (ReferenceServer secinfra = ReferenceServer.start();
        SecinfraClient orders = secinfra.enrolling("spiffe://secinfra.local/orders").build();
        SecinfraClient billing = secinfra.enrolling("spiffe://secinfra.local/billing").build();
        SecinfraClient reports = secinfra.enrolling("spiffe://secinfra.local/reports").build()) {
      // guide:server:begin
      SSLContext serverTls =
          MtlsContext.builder(orders.source())
              .authorizer(Authorizers.id("spiffe://secinfra.local/billing"))
              .build();
      HttpsServer server = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
      server.setHttpsConfigurator(new HttpsConfigurator(serverTls));
      server.createContext(
          "/orders",
          exchange -> {
            String caller = PeerId.of(exchange); // spiffe://secinfra.local/billing
            byte[] body = ("hello " + caller).getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
          });
      server.start();
      // guide:server:end
      try {
        URI ordersUrl = URI.create("https://127.0.0.1:" + server.getAddress().getPort() + "/orders");
        // guide:client:begin
        SSLContext clientTls =
            MtlsContext.create(billing.source(), Authorizers.id("spiffe://secinfra.local/orders"));
        HttpClient http = HttpClient.newBuilder().sslContext(clientTls).build();
        HttpResponse<String> response =
            http.send(HttpRequest.newBuilder(ordersUrl).build(), HttpResponse.BodyHandlers.ofString());
        String serverId = PeerId.of(response); // spiffe://secinfra.local/orders
        // guide:client:end
        assertEquals("hello spiffe://secinfra.local/billing", response.body());
        assertEquals("spiffe://secinfra.local/orders", serverId);

        SSLContext reportsTls =
            MtlsContext.create(reports.source(), Authorizers.id("spiffe://secinfra.local/orders"));
        HttpClient other = HttpClient.newBuilder().sslContext(reportsTls).build();
        assertThrows(
            IOException.class,
            () -> other.send(HttpRequest.newBuilder(ordersUrl).build(), HttpResponse.BodyHandlers.ofString()),
            "reports is not the caller the server accepts");
      } finally {
        server.stop(0);
      }
    }
  }

  @Test
  void guideShowsTheseExamplesVerbatim() throws IOException {
    String guide = Files.readString(Path.of("../docs/mtls/java.md"), StandardCharsets.UTF_8);
    String source =
        Files.readString(
            Path.of("src/test/java/dev/secinfra/mtls/MtlsGuideTest.java"), StandardCharsets.UTF_8);
    Matcher block =
        Pattern.compile("// guide:(\\w+):begin\\n(.*?)\\n\\s*// guide:\\1:end", Pattern.DOTALL)
            .matcher(source);
    int found = 0;
    while (block.find()) {
      found++;
      List<String> lines = block.group(2).lines().toList();
      int indent =
          lines.stream().filter(l -> !l.isBlank()).mapToInt(l -> l.length() - l.stripLeading().length()).min().orElse(0);
      String dedented = String.join("\n", lines.stream().map(l -> l.isBlank() ? "" : l.substring(indent)).toList());
      assertTrue(guide.contains(dedented), () -> "docs/mtls/java.md must show the " + block.group(1) + " example:\n" + dedented);
    }
    assertEquals(2, found, "the server and client examples");
  }
}
