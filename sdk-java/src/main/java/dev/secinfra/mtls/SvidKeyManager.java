package dev.secinfra.mtls;

import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import java.net.Socket;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedKeyManager;

/**
 * Presents the {@link IdentitySource}'s current X509-SVID, client or server alike. The JDK asks
 * for an alias, then for the chain and the key of that alias in separate calls; the alias names
 * one snapshot, so the chain and the key of one handshake always come from the same snapshot,
 * even when a renewal lands between the calls. A renewal takes effect on the next handshake.
 *
 * <p>The CA names the peer sends ({@code issuers}) are ignored: an SVID is presented whatever
 * the peer asks for, and the peer decides by its own bundle.
 */
public final class SvidKeyManager extends X509ExtendedKeyManager {
  /**
   * How many snapshots stay resolvable by alias: a handshake that chose an alias just before a
   * few renewals still finds its chain and key.
   */
  private static final int REMEMBERED = 8;

  private final IdentitySource source;
  private final Map<String, IdentitySnapshot> handedOut =
      new LinkedHashMap<>(16, 0.75f, false) {
        /** Serial form version. */
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, IdentitySnapshot> eldest) {
          return size() > REMEMBERED;
        }
      };

  /**
   * A key manager.
   *
   * @param source where the current identity comes from
   */
  public SvidKeyManager(IdentitySource source) {
    this.source = Objects.requireNonNull(source, "source");
  }

  /** The current snapshot's alias when its key is of one of {@code keyTypes}, else null. */
  private String choose(String... keyTypes) {
    IdentitySnapshot snapshot = source.snapshot();
    if (snapshot == null || !matches(snapshot, keyTypes)) {
      return null;
    }
    String alias = "secinfra-" + snapshot.serial() + "-" + System.identityHashCode(snapshot);
    synchronized (handedOut) {
      handedOut.putIfAbsent(alias, snapshot);
    }
    return alias;
  }

  private static boolean matches(IdentitySnapshot snapshot, String[] keyTypes) {
    if (keyTypes == null) {
      return true;
    }
    String algorithm = snapshot.key().getAlgorithm();
    for (String keyType : keyTypes) {
      if (algorithm.equals(keyType)) {
        return true;
      }
    }
    return false;
  }

  private IdentitySnapshot lookup(String alias) {
    if (alias == null) {
      return null;
    }
    synchronized (handedOut) {
      return handedOut.get(alias);
    }
  }

  @Override
  public String chooseClientAlias(String[] keyTypes, Principal[] issuers, Socket socket) {
    return choose(keyTypes);
  }

  @Override
  public String chooseEngineClientAlias(String[] keyTypes, Principal[] issuers, SSLEngine engine) {
    return choose(keyTypes);
  }

  @Override
  public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
    return choose(keyType);
  }

  @Override
  public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
    return choose(keyType);
  }

  @Override
  public String[] getClientAliases(String keyType, Principal[] issuers) {
    String alias = choose(keyType);
    return alias == null ? null : new String[] {alias};
  }

  @Override
  public String[] getServerAliases(String keyType, Principal[] issuers) {
    return getClientAliases(keyType, issuers);
  }

  @Override
  public X509Certificate[] getCertificateChain(String alias) {
    IdentitySnapshot snapshot = lookup(alias);
    return snapshot == null ? null : snapshot.chainArray();
  }

  @Override
  public PrivateKey getPrivateKey(String alias) {
    IdentitySnapshot snapshot = lookup(alias);
    return snapshot == null ? null : snapshot.key();
  }

  @Override
  public String toString() {
    return "SvidKeyManager{" + source.getClass().getSimpleName() + "}";
  }
}
