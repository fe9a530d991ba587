package dev.secinfra.internal.identity;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.RotationPolicy;
import dev.secinfra.TimeSource;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.gen.IdentityClient;
import dev.secinfra.identity.Pem;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.Invoker;
import dev.secinfra.rpc.MethodDescriptor;
import dev.secinfra.rpc.Wire;
import dev.secinfra.testing.TestAuthority;
import java.security.PublicKey;
import java.security.cert.CertificateEncodingException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Deque;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.function.Predicate;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The checks on an issued or renewed certificate (spec 8.7.4, 9.3.3), against a scripted
 * identity service: a refused renewal is not installed, is reported as {@code renewal_failed}
 * saying which check failed, and is retried with backoff until a good answer is installed.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RotatingIdentitySourceTest {
  private static final String TRUST_DOMAIN = "secinfra.local";
  private static final String WORKLOAD = "spiffe://secinfra.local/java/unit";
  private static final String SERVER = "spiffe://secinfra.local/secinfra/server";
  /**
   * Short certificates renew one to two seconds after issue (X.509 times are whole seconds, so
   * less would renew at once); failed renewals retry within 50 ms.
   */
  private static final Duration TTL = Duration.ofSeconds(4);
  private static final RotationPolicy FAST_RETRY =
      new RotationPolicy(
          RotationPolicy.DEFAULT_RENEWAL_FRACTION,
          RotationPolicy.DEFAULT_RENEWAL_JITTER,
          Duration.ofMillis(50),
          Duration.ofMillis(50),
          Duration.ofMillis(100),
          RotationPolicy.DEFAULT_REENROL_RETRY,
          RotationPolicy.DEFAULT_BUNDLE_RETRY,
          RotationPolicy.DEFAULT_BUNDLE_REFRESH,
          RotationPolicy.DEFAULT_BUNDLE_REFRESH_MIN,
          RotationPolicy.DEFAULT_BUNDLE_REFRESH_MAX);

  private final TestAuthority ca = TestAuthority.create(TRUST_DOMAIN);
  private final FakeIdentityService service = new FakeIdentityService(ca);
  private final List<RotationEvent> events = new CopyOnWriteArrayList<>();
  private RotatingIdentitySource source;

  /** One scripted answer to an issuance: who signs it, and for which SPIFFE ID. */
  private record Issuance(TestAuthority signer, String spiffeId) {}

  /** The identity service, scripted: issuances in order, then good ones; the bundle it serves. */
  private static final class FakeIdentityService implements Invoker {
    private final TestAuthority ca;
    private final Deque<Issuance> script = new ConcurrentLinkedDeque<>();
    private final AtomicInteger renewals = new AtomicInteger();
    private final AtomicInteger bundleFetches = new AtomicInteger();
    private volatile List<X509Certificate> bundleCas;
    private volatile int bundleSequence = 1;

    FakeIdentityService(TestAuthority ca) {
      this.ca = ca;
      this.bundleCas = List.of(ca.certificate());
    }

    @Override
    public <T> T invoke(
        MethodDescriptor method,
        ObjectNode request,
        CallOptions options,
        Function<JsonNode, T> decode) {
      switch (method.name()) {
        case "IssueCertificate":
          return decode.apply(issue(request));
        case "RenewCertificate":
          renewals.incrementAndGet();
          return decode.apply(issue(request));
        case "GetTrustBundle":
          bundleFetches.incrementAndGet();
          return decode.apply(bundle());
        default:
          throw new AssertionError("unexpected call " + method.name());
      }
    }

    @Override
    public <T> CompletableFuture<T> invokeAsync(
        MethodDescriptor method,
        ObjectNode request,
        CallOptions options,
        Function<JsonNode, T> decode) {
      return CompletableFuture.completedFuture(invoke(method, request, options, decode));
    }

    private JsonNode issue(ObjectNode request) {
      Issuance next = script.poll();
      if (next == null) {
        next = new Issuance(ca, WORKLOAD);
      }
      List<X509Certificate> chain =
          next.signer().issue(next.spiffeId(), csrKey(request.get("csr_pem").asText()), TTL);
      ObjectNode svid = Wire.object();
      svid.put("spiffe_id", next.spiffeId());
      svid.put("cert_chain_pem", Pem.encodeCertificates(chain));
      svid.put("serial", chain.get(0).getSerialNumber().toString(16));
      ObjectNode answer = Wire.object();
      answer.set("svid", svid);
      return answer;
    }

    private JsonNode bundle() {
      ObjectNode bundle = Wire.object();
      for (X509Certificate authority : bundleCas) {
        ObjectNode key = bundle.withArray("keys").addObject();
        key.put("use", "x509-svid");
        key.put("kty", "EC");
        try {
          key.putArray("x5c").add(Base64.getEncoder().encodeToString(authority.getEncoded()));
        } catch (CertificateEncodingException e) {
          throw new AssertionError(e);
        }
      }
      bundle.put("spiffe_sequence", bundleSequence);
      return bundle;
    }

    private static PublicKey csrKey(String pem) {
      try {
        String base64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return new JcaPKCS10CertificationRequest(Base64.getDecoder().decode(base64)).getPublicKey();
      } catch (Exception e) {
        throw new AssertionError("the CSR does not parse", e);
      }
    }
  }

  private RotatingIdentitySource start(X509Bundle bundle) {
    source =
        new RotatingIdentitySource(
            bundle, FAST_RETRY, TimeSource.SYSTEM, new SplittableRandom(14), null, true);
    source.attach(new IdentityClient(service), new HttpTransport(source, SERVER), () -> {});
    source.subscribe(events::add);
    return source;
  }

  @AfterEach
  void stop() {
    if (source != null) {
      source.close();
    }
  }

  private void awaitEvent(Predicate<RotationEvent> wanted) throws InterruptedException {
    awaitUntil(() -> events.stream().anyMatch(wanted));
  }

  private void awaitUntil(BooleanSupplier condition) throws InterruptedException {
    long until = System.nanoTime() + 20_000_000_000L;
    while (System.nanoTime() < until && !condition.getAsBoolean()) {
      Thread.sleep(20);
    }
    assertTrue(
        condition.getAsBoolean(),
        () -> "events: " + kinds() + ", bundle fetches: " + service.bundleFetches.get());
  }

  private List<RotationEvent.Kind> kinds() {
    List<RotationEvent.Kind> out = new ArrayList<>();
    events.forEach(e -> out.add(e.kind()));
    return out;
  }

  private RotationEvent first(RotationEvent.Kind kind) {
    return events.stream().filter(e -> e.kind() == kind).findFirst().orElseThrow();
  }

  @Test
  void aRenewalWithAnotherSpiffeIdIsRefusedThenTheNextGoodOneIsInstalled() throws Exception {
    service.script.add(new Issuance(ca, WORKLOAD));
    service.script.add(new Issuance(ca, "spiffe://secinfra.local/java/someone-else"));
    start(ca.bundle()).enrol("sjt_unit.token", CallOptions.DEFAULTS);
    String enrolled = source.snapshot().serial();

    awaitEvent(e -> e.kind() == RotationEvent.Kind.RENEWED);

    RotationEvent failed = first(RotationEvent.Kind.RENEWAL_FAILED);
    assertEquals(enrolled, failed.snapshot().serial(), "the refused certificate is not installed");
    SecinfraException error = assertInstanceOf(TransportException.class, failed.error());
    assertTrue(error.getMessage().startsWith("secinfra: identity: "), error.getMessage());
    assertTrue(
        error.getMessage().contains("SPIFFE ID spiffe://secinfra.local/java/someone-else"),
        error.getMessage());
    assertTrue(kinds().indexOf(RotationEvent.Kind.RENEWAL_FAILED)
        < kinds().indexOf(RotationEvent.Kind.RENEWED));
    assertEquals(WORKLOAD, source.snapshot().spiffeId());
    assertNotEquals(enrolled, source.snapshot().serial());
    assertTrue(service.renewals.get() >= 2);
  }

  @Test
  void aRenewalFromACaInNoBundleIsRefusedAfterOneBundleRefresh() throws Exception {
    TestAuthority stranger = TestAuthority.create(TRUST_DOMAIN);
    service.script.add(new Issuance(ca, WORKLOAD));
    service.script.add(new Issuance(stranger, WORKLOAD));
    start(ca.bundle()).enrol("sjt_unit.token", CallOptions.DEFAULTS);
    String enrolled = source.snapshot().serial();
    // The fetch right after enrolment (spec 10.2.1); the next one is minutes away.
    awaitUntil(() -> service.bundleFetches.get() == 1);

    awaitEvent(e -> e.kind() == RotationEvent.Kind.RENEWED);

    RotationEvent failed = first(RotationEvent.Kind.RENEWAL_FAILED);
    assertEquals(enrolled, failed.snapshot().serial());
    assertTrue(
        failed.error().getMessage().contains("does not chain to the trust bundle after a bundle refresh"),
        failed.error().getMessage());
    assertEquals(2, service.bundleFetches.get(), "the refused chain got one bundle refresh");
    assertEquals(ca.certificate(), source.snapshot().chain().get(1));
  }

  @Test
  void aRenewalFromARotatedCaIsInstalledOnceTheRefreshedBundleHoldsIt() throws Exception {
    TestAuthority next = TestAuthority.create(TRUST_DOMAIN);
    service.script.add(new Issuance(ca, WORKLOAD));
    service.script.add(new Issuance(next, WORKLOAD));
    start(ca.bundle()).enrol("sjt_unit.token", CallOptions.DEFAULTS);
    // The CA rotates after enrolment: the server's bundle now holds both CAs.
    service.bundleCas = List.of(ca.certificate(), next.certificate());
    service.bundleSequence = 2;

    awaitEvent(e -> e.kind() == RotationEvent.Kind.RENEWED);

    assertTrue(events.stream().noneMatch(e -> e.kind() == RotationEvent.Kind.RENEWAL_FAILED), "events: " + kinds());
    assertEquals(next.certificate(), source.snapshot().chain().get(1));
    assertEquals(2, source.bundle().sequence());
  }

  @Test
  void anEnrolmentFromACaInNoBundleFailsAndInstallsNothing() {
    TestAuthority stranger = TestAuthority.create(TRUST_DOMAIN);
    service.script.add(new Issuance(stranger, WORKLOAD));
    start(ca.bundle());

    TransportException error =
        assertThrows(
            TransportException.class, () -> source.enrol("sjt_unit.token", CallOptions.DEFAULTS));

    assertTrue(error.getMessage().contains("does not chain to the trust bundle"), error.getMessage());
    assertTrue(error.getMessage().startsWith("secinfra: identity: "), error.getMessage());
    assertEquals(1, service.bundleFetches.get(), "one bundle refresh before giving up");
    assertNull(source.snapshot());
    assertTrue(events.isEmpty(), "events: " + kinds());
  }
}
