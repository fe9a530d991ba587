package dev.secinfra.identity;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Instant;
import java.util.Objects;

/**
 * An identity and a trust bundle that never change: fixed values, or files read once (for
 * example the admin identity written by {@code secinfra-server init}). Used where a rotating
 * identity is not wanted, and in tests; the transport asks it on every handshake like any {@link
 * IdentitySource}.
 */
public final class StaticIdentitySource implements IdentitySource {
  private final IdentitySnapshot snapshot;
  private final X509Bundle bundle;

  private StaticIdentitySource(IdentitySnapshot snapshot, X509Bundle bundle) {
    this.snapshot = Objects.requireNonNull(snapshot, "snapshot");
    this.bundle = Objects.requireNonNull(bundle, "bundle");
  }

  /**
   * A source holding {@code snapshot} and {@code bundle}.
   *
   * @param snapshot the identity
   * @param bundle the trust bundle
   * @return the source
   */
  public static StaticIdentitySource of(IdentitySnapshot snapshot, X509Bundle bundle) {
    return new StaticIdentitySource(snapshot, bundle);
  }

  /**
   * A source read from files once: a PEM chain (leaf first), a PEM PKCS #8 key, and a bundle (PEM
   * or SPIFFE bundle JSON).
   *
   * @param certFile the certificate chain
   * @param keyFile the private key
   * @param bundleFile the trust bundle
   * @return the source
   * @throws IllegalArgumentException when the files do not hold an X509-SVID and its key
   * @throws UncheckedIOException when a file cannot be read
   */
  public static StaticIdentitySource fromFiles(Path certFile, Path keyFile, Path bundleFile) {
    try {
      IdentitySnapshot snapshot =
          new IdentitySnapshot(
              Pem.parseCertificates(read(certFile)), Pem.parsePrivateKey(read(keyFile)), Instant.now());
      return new StaticIdentitySource(snapshot, X509Bundle.parse(read(bundleFile)));
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("secinfra: identity: the identity files do not load", e);
    }
  }

  private static String read(Path file) {
    try {
      return Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("secinfra: config: cannot read " + file, e);
    }
  }

  @Override
  public IdentitySnapshot snapshot() {
    return snapshot;
  }

  @Override
  public X509Bundle bundle() {
    return bundle;
  }

  @Override
  public String toString() {
    return "StaticIdentitySource{" + snapshot + ", " + bundle + "}";
  }
}
