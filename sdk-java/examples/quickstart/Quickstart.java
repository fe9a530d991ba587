import dev.secinfra.SecinfraClient;
import dev.secinfra.gen.CheckRequest;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.Secret;
import dev.secinfra.gen.TupleKey;
import java.nio.file.Path;

/**
 * Enrols with a join token, reads a secret and checks an authorization, printing no secret value.
 * Needs SECINFRA_URL, SECINFRA_JOIN_TOKEN and SECINFRA_BUNDLE_FILE.
 */
public final class Quickstart {
  private Quickstart() {}

  /**
   * Runs the quickstart.
   *
   * @param args unused
   */
  public static void main(String[] args) {
    String name = "payments/db/password";
    try (SecinfraClient client =
        SecinfraClient.builder(System.getenv("SECINFRA_URL"))
            .bundleFile(Path.of(System.getenv("SECINFRA_BUNDLE_FILE")))
            .joinToken(System.getenv("SECINFRA_JOIN_TOKEN"))
            .build()) {
      Secret secret = client.secrets().getSecret(GetSecretRequest.builder().name(name).build());
      System.out.printf(
          "secret %s: version %d, %d bytes%n", name, secret.version(), secret.value().length);

      String me = "workload:" + client.source().snapshot().spiffeId();
      boolean allowed =
          client
              .authz()
              .check(
                  CheckRequest.builder()
                      .tupleKey(new TupleKey(me, "reader", "secret:" + name, null))
                      .build())
              .allowed();
      System.out.printf("can read %s: %b%n", name, allowed);
    }
  }
}
