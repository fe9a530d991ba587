package dev.secinfra.rpc;

import java.util.List;

/**
 * What the API definition says about one RPC; the runtime's behaviour depends only on this and
 * the request.
 *
 * @param service the service's full name ({@code secinfra.v1.SecretsService})
 * @param name the RPC name ({@code GetSecret})
 * @param httpMethod the HTTP method
 * @param path the path template ({@code /v1/secrets/{name=**}})
 * @param pathParams fields bound in the path
 * @param queryParams fields sent in the query string (GET, DELETE)
 * @param bodyFields fields sent in the JSON body (POST, PUT, PATCH)
 * @param idempotency the RPC's idempotency
 * @param auth how the RPC authenticates
 * @param cache the cache policy, or null when not cacheable
 * @param invalidates what a success invalidates, or null
 * @param admin whether only admins may call it
 */
public record MethodDescriptor(
    String service,
    String name,
    String httpMethod,
    String path,
    List<String> pathParams,
    List<String> queryParams,
    List<String> bodyFields,
    Idempotency idempotency,
    Auth auth,
    CachePolicy cache,
    Invalidation invalidates,
    boolean admin) {

  /**
   * The method's name as cache keys and logs spell it: {@code secinfra.v1.SecretsService/GetSecret}.
   *
   * @return the full method name
   */
  public String fullName() {
    return service + "/" + name;
  }
}
