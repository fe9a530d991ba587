package dev.secinfra.identity;

import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.spec.ECGenParameterSpec;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/** Key generation and certificate requests (spec 8.2, 8.3): the key never leaves the process. */
public final class Csr {
  /** The default key: ECDSA on P-256. */
  public static final String DEFAULT_CURVE = "secp256r1";

  private static final SecureRandom RANDOM = new SecureRandom();

  private Csr() {}

  /**
   * A new ECDSA P-256 key pair from a cryptographically secure generator.
   *
   * @return the key pair
   */
  public static KeyPair newKeyPair() {
    try {
      KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
      generator.initialize(new ECGenParameterSpec(DEFAULT_CURVE), RANDOM);
      return generator.generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("secinfra: identity: cannot generate an ECDSA P-256 key", e);
    }
  }

  /**
   * A PKCS #10 CSR in PEM, signed by the key, with an empty subject and no attributes or
   * extensions: the server decides everything but the public key.
   *
   * @param keyPair the new key pair
   * @return the CSR PEM
   */
  public static String create(KeyPair keyPair) {
    try {
      PKCS10CertificationRequest request =
          new JcaPKCS10CertificationRequestBuilder(new X500Name(new org.bouncycastle.asn1.x500.RDN[0]), keyPair.getPublic())
              .build(new JcaContentSignerBuilder("SHA256withECDSA").build(keyPair.getPrivate()));
      return Pem.encode("CERTIFICATE REQUEST", request.getEncoded());
    } catch (OperatorCreationException | IOException e) {
      throw new IllegalStateException("secinfra: identity: cannot build the certificate request", e);
    }
  }
}
