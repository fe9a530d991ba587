package dev.secinfra.internal.identity;

import dev.secinfra.RotationPolicy;
import dev.secinfra.TimeSource;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.gen.GetTrustBundleRequest;
import dev.secinfra.gen.IdentityClient;
import dev.secinfra.gen.IssueCertificateRequest;
import dev.secinfra.gen.IssueCertificateResponse;
import dev.secinfra.gen.RenewCertificateRequest;
import dev.secinfra.gen.RenewCertificateResponse;
import dev.secinfra.gen.X509Svid;
import dev.secinfra.identity.Csr;
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.identity.Pem;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.internal.Errors;
import dev.secinfra.internal.call.IdentityGate;
import dev.secinfra.internal.rotation.Rotation;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.rpc.CallOptions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.random.RandomGenerator;

/**
 * The client's rotating identity: enrolment, renewal, expiry and re-enrolment, trust-bundle
 * refresh, and rotation events (spec 8 to 10), scheduled by the pure timing of {@link Rotation}.
 * It is the {@link IdentitySource} the transport asks on every handshake; snapshots are swapped
 * atomically (one volatile reference). Every issued or renewed certificate is checked before it
 * is installed (spec 8.7.4, 9.3.3): an X509-SVID for the new key, the current SPIFFE ID on
 * renewal, and a chain to the trust bundle, after one bundle refresh when it does not.
 *
 * <p>Internal rather than public: its life (threads, enrolment through the client's own call
 * pipeline and transport) belongs to {@code SecinfraClient}, which hands applications the {@link
 * IdentitySource} interface ({@code client.source()}).
 */
public final class RotatingIdentitySource implements IdentitySource, IdentityGate {
  private static final System.Logger LOG = System.getLogger("dev.secinfra.identity");
  /** How long close() lets running rotation work (a file sink write) finish. */
  private static final long CLOSE_GRACE_MILLIS = 1000;

  private final RotationPolicy policy;
  private final TimeSource time;
  private final RandomGenerator random;
  private final Supplier<String> jwtProvider;
  private final boolean rotating;
  private final List<Consumer<RotationEvent>> listeners = new CopyOnWriteArrayList<>();
  private final ReentrantLock delivery = new ReentrantLock();
  private final ScheduledExecutorService scheduler;
  private final Object lock = new Object();
  private volatile IdentitySnapshot snapshot;
  private volatile X509Bundle bundle;
  private volatile boolean closed;
  private IdentityClient client;
  private HttpTransport transport;
  private Runnable onIdChange = () -> {};
  private ScheduledFuture<?> renewalTask;
  private ScheduledFuture<?> expiryTask;
  private ScheduledFuture<?> bundleTask;
  private int renewalFailures;
  private boolean lastChanceUsed;
  private CompletableFuture<IdentitySnapshot> reenrolment;
  private String expiredSerial;

  /**
   * A rotating source (or, with {@code rotating} false, the holder of a static identity).
   *
   * @param bundle the initial trust bundle
   * @param policy rotation settings
   * @param time the clocks
   * @param random the jitter source
   * @param jwtProvider a reusable attestation (JWT) provider, or null
   * @param rotating whether the identity is enrolled (renewed, refreshed) rather than static
   */
  public RotatingIdentitySource(
      X509Bundle bundle,
      RotationPolicy policy,
      TimeSource time,
      RandomGenerator random,
      Supplier<String> jwtProvider,
      boolean rotating) {
    this.bundle = bundle;
    this.policy = policy;
    this.time = time;
    this.random = random;
    this.jwtProvider = jwtProvider;
    this.rotating = rotating;
    ScheduledThreadPoolExecutor pool =
        new ScheduledThreadPoolExecutor(
            2,
            r -> {
              Thread t = new Thread(r, "secinfra-rotation");
              t.setDaemon(true);
              return t;
            });
    pool.setRemoveOnCancelPolicy(true);
    pool.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    this.scheduler = pool;
  }

  /**
   * Connects the generated identity client and the transport.
   *
   * @param client the identity service client (through the call pipeline)
   * @param transport the transport whose pools follow the identity
   * @param onIdChange run when the SPIFFE ID changes (drops the cache)
   */
  public void attach(IdentityClient client, HttpTransport transport, Runnable onIdChange) {
    this.client = client;
    this.transport = transport;
    this.onIdChange = onIdChange;
  }

  @Override
  public IdentitySnapshot snapshot() {
    return snapshot;
  }

  @Override
  public X509Bundle bundle() {
    return bundle;
  }

  /**
   * Subscribes to rotation events.
   *
   * @param listener the subscriber
   */
  public void subscribe(Consumer<RotationEvent> listener) {
    listeners.add(listener);
  }

  /**
   * Unsubscribes.
   *
   * @param listener the subscriber
   */
  public void unsubscribe(Consumer<RotationEvent> listener) {
    listeners.remove(listener);
  }

  // ---- enrolment ------------------------------------------------------------------------------

  /**
   * Installs a static identity (never renewed).
   *
   * @param identity the snapshot
   */
  public void installStatic(IdentitySnapshot identity) {
    this.snapshot = identity;
    scheduleExpiry(identity);
  }

  /**
   * The first enrolment, with a join token (single use) or the JWT provider.
   *
   * @param joinToken the join token, or null to use the JWT provider
   * @param options call options of the enrolment call
   * @throws SecinfraException when enrolment fails; the client must not be used then
   */
  public void enrol(String joinToken, CallOptions options) {
    enrol(joinToken, options, () -> {});
  }

  private void enrol(String joinToken, CallOptions options, Runnable installed) {
    IssueCertificateResponse response;
    KeyPair keys = Csr.newKeyPair();
    IssueCertificateRequest.Builder request =
        IssueCertificateRequest.builder().csrPem(Csr.create(keys));
    if (joinToken != null) {
      request.joinToken(joinToken);
    } else {
      request.jwt(jwtProvider.get());
    }
    response = client.issueCertificate(request.build(), options);
    IdentitySnapshot next =
        install(response.svid(), keys, null, RotationEvent.Kind.ENROLLED, installed);
    if (rotating && next != null) {
      // The fetch right after enrolment (spec 10.2.1), before enrolment returns: the client
      // starts with the server's current bundle. A failed fetch only schedules its retry.
      refreshBundle();
    }
  }

  /**
   * The checks of spec 8.7.4 and 9.3.3 on an issued or renewed certificate, in order: it parses,
   * its leaf is an X509-SVID for the new key, it has the current SPIFFE ID (renewal only), and
   * its chain verifies against the trust bundle; when it does not, the bundle is fetched once (a
   * CA rotation this client has not seen yet) and the chain checked again.
   *
   * @throws IllegalStateException naming the check that failed
   */
  private IdentitySnapshot check(X509Svid svid, KeyPair keys, String expectedId) {
    if (svid == null) {
      throw new IllegalStateException("secinfra: identity: the answer holds no certificate");
    }
    List<X509Certificate> chain;
    try {
      chain = Pem.parseCertificates(svid.certChainPem());
    } catch (CertificateException e) {
      throw new IllegalStateException("secinfra: identity: the issued certificate does not parse", e);
    }
    IdentitySnapshot next = new IdentitySnapshot(chain, keys.getPrivate(), time.now());
    if (expectedId != null && !next.spiffeId().equals(expectedId)) {
      throw new IllegalStateException(
          "secinfra: identity: the renewed certificate's SPIFFE ID "
              + next.spiffeId()
              + " is not the current one, "
              + expectedId);
    }
    try {
      bundle.verify(next.chain(), time.now());
    } catch (GeneralSecurityException first) {
      try {
        fetchBundle(CallOptions.builder().useCache(true).revalidate(true).build());
      } catch (RuntimeException refresh) {
        IllegalStateException refused = notChained(first, "; the bundle refresh failed too");
        refused.addSuppressed(refresh);
        throw refused;
      }
      try {
        bundle.verify(next.chain(), time.now());
      } catch (GeneralSecurityException again) {
        throw notChained(again, " after a bundle refresh");
      }
    }
    return next;
  }

  private static IllegalStateException notChained(GeneralSecurityException cause, String after) {
    return new IllegalStateException(
        "secinfra: identity: the new certificate does not chain to the trust bundle"
            + after
            + " ("
            + cause.getMessage()
            + ")",
        cause);
  }

  private IdentitySnapshot install(
      X509Svid svid,
      KeyPair keys,
      String expectedId,
      RotationEvent.Kind kind,
      Runnable beforeEvents) {
    IdentitySnapshot next;
    try {
      next = check(svid, keys, expectedId);
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw Errors.transport(
          "secinfra: identity: the server's certificate was refused: " + e.getMessage(), false, 1, e);
    }
    IdentitySnapshot previous;
    synchronized (lock) {
      previous = snapshot;
      snapshot = next;
      renewalFailures = 0;
      lastChanceUsed = false;
    }
    transport.identityChanged();
    if (previous != null && !previous.spiffeId().equals(next.spiffeId())) {
      onIdChange.run();
    }
    // Waiting calls go on before subscribers run: a subscriber may make calls (spec 9.8.5).
    beforeEvents.run();
    emit(kind, null);
    scheduleRenewal(next);
    scheduleExpiry(next);
    return next;
  }

  // ---- renewal --------------------------------------------------------------------------------

  private void scheduleRenewal(IdentitySnapshot current) {
    if (!rotating || closed) {
      return;
    }
    Instant at =
        Rotation.renewalTime(current.issueTime(), current.lifetime(), policy, random.nextDouble());
    schedule(Duration.between(time.now(), at), this::renew, Task.RENEWAL);
  }

  private void renew() {
    IdentitySnapshot current = snapshot;
    if (closed || current == null || current.expiredAt(time.now())) {
      return;
    }
    try {
      KeyPair keys = Csr.newKeyPair();
      RenewCertificateResponse response =
          client.renewCertificate(
              RenewCertificateRequest.builder().csrPem(Csr.create(keys)).build(), CallOptions.DEFAULTS);
      // A refused certificate is a failed renewal (spec 9.3.3): not installed, retried with
      // backoff, and the current certificate stays in use.
      install(response.svid(), keys, current.spiffeId(), RotationEvent.Kind.RENEWED, () -> {});
    } catch (RuntimeException e) {
      renewalFailed(current, e);
    }
  }

  private void renewalFailed(IdentitySnapshot current, RuntimeException error) {
    int failures;
    synchronized (lock) {
      if (snapshot != current) {
        return;
      }
      failures = ++renewalFailures;
    }
    emit(RotationEvent.Kind.RENEWAL_FAILED, error);
    Rotation.RetryDelay next =
        Rotation.retryDelay(failures, policy, random.nextDouble(), time.now(), current.notAfter());
    if (next.lastChance()) {
      synchronized (lock) {
        if (lastChanceUsed) {
          return;
        }
        lastChanceUsed = true;
      }
    }
    schedule(next.delay(), this::renew, Task.RENEWAL);
  }

  // ---- expiry and re-enrolment ------------------------------------------------------------------

  private void scheduleExpiry(IdentitySnapshot current) {
    if (closed) {
      return;
    }
    schedule(Duration.between(time.now(), current.notAfter()), () -> expired(current), Task.EXPIRY);
  }

  private void expired(IdentitySnapshot current) {
    if (closed || snapshot != current) {
      return;
    }
    if (!current.expiredAt(time.now())) {
      scheduleExpiry(current);
      return;
    }
    boolean first;
    synchronized (lock) {
      first = !current.serial().equals(expiredSerial);
      expiredSerial = current.serial();
    }
    if (first) {
      emit(RotationEvent.Kind.EXPIRED, expiredError(null));
    }
    if (jwtProvider != null && rotating) {
      reenrolInBackground();
    }
  }

  private void reenrolInBackground() {
    CompletableFuture<IdentitySnapshot> flight = startReenrolment();
    flight.whenComplete(
        (ok, error) -> {
          if (error != null && !closed) {
            schedule(policy.reenrolRetry(), this::reenrolInBackground, Task.EXPIRY);
          }
        });
  }

  private CompletableFuture<IdentitySnapshot> startReenrolment() {
    CompletableFuture<IdentitySnapshot> flight;
    synchronized (lock) {
      if (reenrolment != null && !reenrolment.isDone()) {
        return reenrolment;
      }
      flight = new CompletableFuture<>();
      reenrolment = flight;
    }
    CompletableFuture<IdentitySnapshot> started = flight;
    if (closed) {
      flight.completeExceptionally(Errors.transport("secinfra: client: the client is closed", false, 0, null));
      return flight;
    }
    scheduler.execute(
        () -> {
          try {
            enrol(null, CallOptions.DEFAULTS, () -> started.complete(snapshot));
            started.complete(snapshot);
          } catch (RuntimeException e) {
            started.completeExceptionally(e);
          }
        });
    return flight;
  }

  private SecinfraException expiredError(Throwable cause) {
    IdentitySnapshot current = snapshot;
    String when = current == null ? "" : " at " + current.notAfter();
    if (cause != null) {
      return Errors.identityExpired(
          "secinfra: identity: the certificate expired" + when + " and re-enrolment failed: "
              + cause.getMessage(),
          cause);
    }
    return Errors.identityExpired(
        "secinfra: identity: the certificate expired"
            + when
            + " and cannot be renewed"
            + (jwtProvider == null ? "; enrol again with a new join token" : ""),
        null);
  }

  @Override
  public void awaitIdentity(long deadlineNanos) {
    IdentitySnapshot current = snapshot;
    if (current != null && !current.expiredAt(time.now())) {
      return;
    }
    if (jwtProvider == null || !rotating) {
      throw expiredError(null);
    }
    CompletableFuture<IdentitySnapshot> flight = startReenrolment();
    long wait = deadlineNanos - time.nanoTime();
    try {
      if (wait <= 0) {
        throw new TimeoutException();
      }
      flight.get(wait, TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      throw Errors.deadline(
          "secinfra: identity: deadline exceeded while waiting for re-enrolment", 0, null);
    } catch (ExecutionException e) {
      throw expiredError(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw expiredError(e);
    }
  }

  // ---- trust bundle -----------------------------------------------------------------------------

  private void scheduleBundle(Duration delay) {
    schedule(delay, this::refreshBundle, Task.BUNDLE);
  }

  private void refreshBundle() {
    if (closed) {
      return;
    }
    try {
      // Reaches the server, conditional on the held bundle's ETag (spec 10.2.2): a 304 keeps
      // the bundle and counts as a successful fetch.
      fetchBundle(CallOptions.builder().useCache(true).revalidate(true).build());
      scheduleBundle(Rotation.bundleRefresh(bundle, policy));
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "secinfra: identity: bundle refresh failed: {0}", e.getMessage());
      scheduleBundle(Rotation.bundleRetry(bundle, policy));
    }
  }

  private boolean fetchBundle(CallOptions options) {
    dev.secinfra.gen.TrustBundle answer =
        client.getTrustBundle(GetTrustBundleRequest.builder().build(), options);
    X509Bundle fetched = X509Bundle.fromSpiffeJson(answer.toJson());
    boolean sameAuthorities;
    synchronized (lock) {
      if (fetched.sequence() <= bundle.sequence()) {
        return false;
      }
      sameAuthorities =
          new java.util.HashSet<>(fetched.authorities())
              .equals(new java.util.HashSet<>(bundle.authorities()));
      bundle = fetched;
    }
    if (!sameAuthorities) {
      // Connections verified under another set of CAs must not be reused (spec 10.5.2); with the
      // same CAs they stay, which keeps a verified channel for the next refresh (10.3.4).
      transport.bundleChanged();
    }
    emit(RotationEvent.Kind.BUNDLE_UPDATED, null);
    return true;
  }

  @Override
  public boolean refreshBundleNow(long deadlineNanos) {
    long left = deadlineNanos - time.nanoTime();
    if (left <= 0) {
      return false;
    }
    try {
      return fetchBundle(
          CallOptions.builder()
              .useCache(true)
              .revalidate(true)
              .deadline(Duration.ofNanos(left))
              .build());
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "secinfra: identity: bundle refresh failed: {0}", e.getMessage());
      return false;
    }
  }

  // ---- events and scheduling ----------------------------------------------------------------------

  private void emit(RotationEvent.Kind kind, Throwable error) {
    delivery.lock();
    try {
      RotationEvent event = new RotationEvent(kind, snapshot, bundle, error, time.now());
      for (Consumer<RotationEvent> listener : listeners) {
        try {
          listener.accept(event);
        } catch (RuntimeException e) {
          LOG.log(System.Logger.Level.WARNING, "secinfra: identity: a rotation subscriber failed", e);
        }
      }
    } finally {
      delivery.unlock();
    }
  }

  private enum Task {
    RENEWAL,
    EXPIRY,
    BUNDLE
  }

  private void schedule(Duration delay, Runnable task, Task kind) {
    if (closed) {
      return;
    }
    long millis = Math.max(0, delay.toMillis());
    synchronized (lock) {
      ScheduledFuture<?> future;
      try {
        future = scheduler.schedule(task, millis, TimeUnit.MILLISECONDS);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        return; // closed meanwhile
      }
      switch (kind) {
        case RENEWAL:
          if (renewalTask != null) {
            renewalTask.cancel(false);
          }
          renewalTask = future;
          break;
        case EXPIRY:
          expiryTask = future;
          break;
        default:
          if (bundleTask != null) {
            bundleTask.cancel(false);
          }
          bundleTask = future;
          break;
      }
    }
  }

  /** Stops rotation: cancels scheduled work, lets running work finish briefly, stops the threads. */
  public void close() {
    closed = true;
    scheduler.shutdown();
    try {
      if (!scheduler.awaitTermination(CLOSE_GRACE_MILLIS, TimeUnit.MILLISECONDS)) {
        scheduler.shutdownNow();
      }
    } catch (InterruptedException e) {
      scheduler.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public String toString() {
    IdentitySnapshot current = snapshot;
    return "RotatingIdentitySource{spiffeId="
        + (current == null ? null : current.spiffeId())
        + ", bundleSequence="
        + bundle.sequence()
        + "}";
  }
}
