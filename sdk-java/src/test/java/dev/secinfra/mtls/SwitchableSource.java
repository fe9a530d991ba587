package dev.secinfra.mtls;

import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.identity.X509Bundle;

/**
 * An identity source whose snapshot and bundle a test replaces, as a renewal or a CA rotation
 * would: the contexts built on it are never rebuilt.
 */
final class SwitchableSource implements IdentitySource {
  private volatile IdentitySnapshot snapshot;
  private volatile X509Bundle bundle;

  SwitchableSource(IdentitySnapshot snapshot, X509Bundle bundle) {
    this.snapshot = snapshot;
    this.bundle = bundle;
  }

  void renew(IdentitySnapshot next) {
    snapshot = next;
  }

  void rotateBundle(X509Bundle next) {
    bundle = next;
  }

  @Override
  public IdentitySnapshot snapshot() {
    return snapshot;
  }

  @Override
  public X509Bundle bundle() {
    return bundle;
  }
}
