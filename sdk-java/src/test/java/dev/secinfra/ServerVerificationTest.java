package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.errors.TransportException;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.GetCrlRequest;
import dev.secinfra.rpc.Wire;
import dev.secinfra.testing.ReferenceServer;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Spec 8.5.1 against a real reference server: every new connection verifies the server's
 * certificate against the current bundle, so an earlier TLS session is never resumed past a CA
 * the client does not trust.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ServerVerificationTest {
  /** The server closes idle connections after this long, so the next call needs a new one. */
  private static final String KEEP_ALIVE_SECONDS = "1";

  private ReferenceServer server;
  private SecinfraClient client;

  @BeforeEach
  void start() throws Exception {
    server = ReferenceServer.start("--idle-timeout-seconds", KEEP_ALIVE_SECONDS);
    client = server.enrolling("spiffe://secinfra.local/java/resumption").build();
  }

  @AfterEach
  void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (server != null) {
      server.close();
    }
  }

  /** Lets the server close the client's idle connections (its keep-alive limit is 1 s). */
  private static void outliveKeepAlive() throws InterruptedException {
    Thread.sleep(2_000);
  }

  private void rotateToACaTheClientDoesNotHold() throws Exception {
    // Prepare and activate at once: the server presents a certificate from the new CA, which the
    // client's bundle (refresh hint 300 s) does not hold, and the client has no verified
    // connection left to fetch the new bundle over (spec 10.3.4).
    server.control("POST", "/_test/ca/rotate", Wire.object());
  }

  @Test
  void anMtlsCallOnANewConnectionAfterACaRotationIsRefused() throws Exception {
    client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
    outliveKeepAlive();
    rotateToACaTheClientDoesNotHold();
    TransportException error =
        assertThrows(
            TransportException.class,
            () -> client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build()));
    assertTrue(
        error.getMessage().contains("does not chain to a CA in the trust bundle"), error.getMessage());
    assertFalse(error.retryable());
    assertEquals(1, error.attempts());
  }

  @Test
  void aCallWithoutClientCertificateOnANewConnectionAfterACaRotationIsRefused() throws Exception {
    client.identity().getCrl(GetCrlRequest.builder().build());
    outliveKeepAlive();
    rotateToACaTheClientDoesNotHold();
    TransportException error =
        assertThrows(
            TransportException.class,
            () -> client.identity().getCrl(GetCrlRequest.builder().build()));
    assertTrue(
        error.getMessage().contains("does not chain to a CA in the trust bundle"), error.getMessage());
    assertFalse(error.retryable());
  }
}
