package dev.secinfra.mtls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.SecinfraClient;
import dev.secinfra.gen.ActivateCaRequest;
import dev.secinfra.gen.CaState;
import dev.secinfra.gen.GetCaStatusRequest;
import dev.secinfra.gen.PrepareCaRotationRequest;
import dev.secinfra.gen.RetireCaRequest;
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.identity.StaticIdentitySource;
import dev.secinfra.mtls.PeerRefusedException.Rule;
import dev.secinfra.testing.ReferenceServer;
import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two workloads enrolled with the real reference server talk mTLS to each other through their
 * clients' rotating sources, across a renewal and a whole CA rotation (prepare, activate,
 * retire), without building a context twice.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MtlsReferenceServerTest {
  private static final String SERVER_ID = "spiffe://secinfra.local/java/orders";
  private static final String CLIENT_ID = "spiffe://secinfra.local/java/billing";

  private static void await(String what, BooleanSupplier condition) throws InterruptedException {
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > until) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(100);
    }
  }

  private static String call(SSLContext context, EchoServer echo) throws Exception {
    // A new HttpClient has no pooled connection: every call here is a new handshake.
    HttpResponse<String> response =
        HttpClient.newBuilder()
            .sslContext(context)
            .build()
            .send(HttpRequest.newBuilder(echo.uri()).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode());
    assertEquals(SERVER_ID, PeerId.of(response));
    return response.body();
  }

  @Test
  void workloadsAuthenticateEachOtherAcrossRenewalAndCaRotation() throws Exception {
    List<PeerRefusedException> refusals = new CopyOnWriteArrayList<>();
    List<RotationEvent> callerEvents = new CopyOnWriteArrayList<>();
    try (ReferenceServer server =
            ReferenceServer.start("--leaf-ttl-seconds", "12", "--bundle-refresh-hint-seconds", "1");
        SecinfraClient admin = server.admin();
        SecinfraClient orders = server.enrolling(SERVER_ID).build();
        SecinfraClient billing = server.enrolling(CLIENT_ID).onRotation(callerEvents::add).build();
        EchoServer echo =
            new EchoServer(
                MtlsContext.builder(orders.source())
                    .authorizer(Authorizers.id(CLIENT_ID))
                    .onRefusal(refusals::add)
                    .build())) {
      SSLContext caller = MtlsContext.create(billing.source(), Authorizers.id(SERVER_ID));

      String first = billing.source().snapshot().serial();
      assertEquals(CLIENT_ID + " " + first, call(caller, echo));

      await("a renewal", () -> callerEvents.stream().anyMatch(e -> e.kind() == RotationEvent.Kind.RENEWED));
      String renewed = billing.source().snapshot().serial();
      assertNotEquals(first, renewed);
      assertEquals(CLIENT_ID + " " + renewed, call(caller, echo), "the renewal is presented");

      String oldCa =
          admin.identity().getCaStatus(GetCaStatusRequest.builder().build()).authorities().stream()
              .filter(ca -> ca.state() == CaState.ACTIVE)
              .findFirst()
              .orElseThrow()
              .id();
      admin.identity().prepareCaRotation(PrepareCaRotationRequest.builder().build());
      await("the new CA in both bundles", () -> orders.source().bundle().authorities().size() == 2
          && billing.source().bundle().authorities().size() == 2);
      IdentitySnapshot oldCaHolder = billing.source().snapshot();
      String token = server.joinToken(CLIENT_ID);
      admin.identity().activateCa(ActivateCaRequest.builder().build());

      // The server now serves with a new-CA certificate: the static admin client (init's bundle)
      // no longer reaches it, so the next clients start from the current two-CA bundle.
      java.nio.file.Path adminDir = server.bundleFile().getParent();
      String bothCas = billing.source().bundle().toPem();
      try (SecinfraClient fresh =
              SecinfraClient.builder(server.url()).bundlePem(bothCas).joinToken(token).build();
          SecinfraClient rotatingAdmin =
              SecinfraClient.builder(server.url())
                  .bundlePem(bothCas)
                  .identityFiles(adminDir.resolve("cert.pem"), adminDir.resolve("key.pem"))
                  .build()) {
        IdentitySnapshot newCaHolder = fresh.source().snapshot();
        assertNotEquals(
            oldCaHolder.leaf().getIssuerX500Principal(),
            newCaHolder.leaf().getIssuerX500Principal(),
            "the fresh client's certificate is from the new CA");
        SSLContext newCaCaller = MtlsContext.create(fresh.source(), Authorizers.id(SERVER_ID));
        assertEquals(
            CLIENT_ID + " " + newCaHolder.serial(),
            call(newCaCaller, echo),
            "a new-CA peer is accepted without a restart");

        rotatingAdmin.identity().retireCa(RetireCaRequest.builder().caId(oldCa).force(true).build());
        await("the old CA out of the server's bundle", () -> orders.source().bundle().authorities().size() == 1);
        // The caller trusts both CAs, so that whichever CA the server's own certificate is from
        // (it renews on its own schedule), the refusal under test is the server's.
        SSLContext oldCaCaller =
            MtlsContext.create(
                StaticIdentitySource.of(oldCaHolder, dev.secinfra.identity.X509Bundle.parse(bothCas)),
                Authorizers.id(SERVER_ID));
        assertTrue(oldCaHolder.notAfter().isAfter(java.time.Instant.now()), "still unexpired");
        refusals.clear();
        assertThrows(IOException.class, () -> call(oldCaCaller, echo), "an old-CA peer is refused");
        assertFalse(refusals.isEmpty());
        assertEquals(Rule.CHAIN, refusals.get(0).rule());
        assertEquals(CLIENT_ID, refusals.get(0).peerId().orElseThrow());
      }
    }
  }
}
