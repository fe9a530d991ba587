package dev.secinfra.identity;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** PEM reading and writing for certificates and PKCS #8 keys. */
public final class Pem {
  private static final Pattern BLOCK =
      Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");

  private Pem() {}

  /**
   * Parses every {@code CERTIFICATE} block, in order.
   *
   * @param pem the PEM text
   * @return the certificates (empty when there are none)
   * @throws CertificateException when a block does not parse
   */
  public static List<X509Certificate> parseCertificates(String pem) throws CertificateException {
    CertificateFactory factory = CertificateFactory.getInstance("X.509");
    List<X509Certificate> out = new ArrayList<>();
    Matcher matcher = BLOCK.matcher(pem);
    while (matcher.find()) {
      if (!matcher.group(1).equals("CERTIFICATE")) {
        continue;
      }
      byte[] der = Base64.getMimeDecoder().decode(matcher.group(2));
      out.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)));
    }
    return out;
  }

  /**
   * Parses a DER certificate.
   *
   * @param der the DER bytes
   * @return the certificate
   * @throws CertificateException when it does not parse
   */
  public static X509Certificate parseDer(byte[] der) throws CertificateException {
    return (X509Certificate)
        CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(der));
  }

  /**
   * Parses an unencrypted PKCS #8 private key ({@code PRIVATE KEY}) of type EC or RSA.
   *
   * @param pem the PEM text
   * @return the key
   * @throws GeneralSecurityException when there is no such block or it does not parse
   */
  public static PrivateKey parsePrivateKey(String pem) throws GeneralSecurityException {
    Matcher matcher = BLOCK.matcher(pem);
    while (matcher.find()) {
      if (!matcher.group(1).equals("PRIVATE KEY")) {
        continue;
      }
      PKCS8EncodedKeySpec spec =
          new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(matcher.group(2)));
      for (String algorithm : new String[] {"EC", "RSA"}) {
        try {
          return KeyFactory.getInstance(algorithm).generatePrivate(spec);
        } catch (GeneralSecurityException e) {
          // try the next algorithm
        }
      }
      throw new GeneralSecurityException("secinfra: identity: unsupported private key type");
    }
    throw new GeneralSecurityException("secinfra: identity: no PRIVATE KEY block (PKCS #8) found");
  }

  /**
   * One PEM block.
   *
   * @param type the block type ({@code CERTIFICATE})
   * @param der the DER bytes
   * @return the PEM text, ending with a newline
   */
  public static String encode(String type, byte[] der) {
    String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der);
    return "-----BEGIN " + type + "-----\n" + body + "\n-----END " + type + "-----\n";
  }

  /**
   * Certificates as PEM, in order.
   *
   * @param certificates the certificates
   * @return the PEM text
   */
  public static String encodeCertificates(List<X509Certificate> certificates) {
    StringBuilder out = new StringBuilder();
    for (X509Certificate certificate : certificates) {
      try {
        out.append(encode("CERTIFICATE", certificate.getEncoded()));
      } catch (java.security.cert.CertificateEncodingException e) {
        throw new IllegalStateException("secinfra: identity: certificate does not encode", e);
      }
    }
    return out.toString();
  }
}
