package dev.secinfra.internal.call;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.rpc.MethodDescriptor;
import dev.secinfra.rpc.Wire;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;

/**
 * A request's URL, query and JSON body, from its descriptor (spec 2.2): path variables are
 * percent-encoded ({@code {name=**}} keeps its slashes), GET and DELETE send the descriptor's
 * query fields and no body, other verbs send the descriptor's body fields as JSON.
 */
public final class RequestEncoder {
  private final String base;

  /**
   * An encoder for requests to one server.
   *
   * @param baseUri the server URL ({@code https://host[:port]}, trailing slashes ignored)
   */
  public RequestEncoder(URI baseUri) {
    String text = baseUri.toString();
    while (text.endsWith("/")) {
      text = text.substring(0, text.length() - 1);
    }
    this.base = text;
  }

  /**
   * The request's URL: the path template filled in, and the query for GET and DELETE.
   *
   * @param method the RPC's descriptor
   * @param request the request's JSON form
   * @return the URL
   */
  public URI uri(MethodDescriptor method, ObjectNode request) {
    return URI.create(base + target(method, request));
  }

  /**
   * The request's path and query, without the endpoint: the part that stays the same on every
   * endpoint an attempt may go to (spec 12.3.4).
   *
   * @param method the RPC's descriptor
   * @param request the request's JSON form
   * @return the path template filled in, and the query for GET and DELETE
   */
  public static String target(MethodDescriptor method, ObjectNode request) {
    StringBuilder path = new StringBuilder();
    String template = method.path();
    int i = 0;
    while (i < template.length()) {
      char c = template.charAt(i);
      if (c != '{') {
        path.append(c);
        i++;
        continue;
      }
      int end = template.indexOf('}', i);
      String variable = template.substring(i + 1, end);
      boolean multi = variable.endsWith("=**");
      String field = multi ? variable.substring(0, variable.length() - 3) : variable;
      path.append(percentEncode(text(request.get(field)), multi));
      i = end + 1;
    }
    StringBuilder query = new StringBuilder();
    if (sendsNoBody(method)) {
      for (String field : method.queryParams()) {
        JsonNode value = request.get(field);
        if (value == null || value.isNull()) {
          continue;
        }
        if (value.isArray()) {
          for (JsonNode item : value) {
            appendQuery(query, field, text(item));
          }
        } else {
          appendQuery(query, field, text(value));
        }
      }
    }
    return path + (query.length() == 0 ? "" : "?" + query);
  }

  /**
   * The request's JSON body: the descriptor's body fields, or null for GET and DELETE.
   *
   * @param method the RPC's descriptor
   * @param request the request's JSON form
   * @return the body bytes, or null
   */
  public static byte[] body(MethodDescriptor method, ObjectNode request) {
    if (sendsNoBody(method)) {
      return null;
    }
    ObjectNode body = Wire.object();
    for (Map.Entry<String, JsonNode> field : request.properties()) {
      JsonNode value = field.getValue();
      // Spec 2.3.5 with 2.3.3: an empty repeated field is absent from the message, so from
      // its body too.
      boolean emptyRepeated = value.isArray() && value.isEmpty();
      if (method.bodyFields().contains(field.getKey()) && !emptyRepeated) {
        body.set(field.getKey(), value);
      }
    }
    try {
      return Wire.MAPPER.writeValueAsBytes(body);
    } catch (IOException e) {
      throw new IllegalStateException("secinfra: transport: request does not encode", e);
    }
  }

  /**
   * A request field's value as text: strings as they are, other JSON values as JSON, absent as
   * empty.
   *
   * @param value the field's value, or null
   * @return the text
   */
  public static String text(JsonNode value) {
    if (value == null || value.isNull()) {
      return "";
    }
    return value.isTextual() ? value.textValue() : value.toString();
  }

  /**
   * Percent-encodes every byte but the RFC 3986 unreserved characters (and {@code /} when kept).
   *
   * @param value the text
   * @param keepSlash keep {@code /} as it is (a {@code {name=**}} variable)
   * @return the encoded text
   */
  public static String percentEncode(String value, boolean keepSlash) {
    StringBuilder out = new StringBuilder();
    for (byte b : value.getBytes(StandardCharsets.UTF_8)) {
      int c = b & 0xff;
      boolean unreserved =
          (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '.' || c == '_' || c == '~';
      if (unreserved || (keepSlash && c == '/')) {
        out.append((char) c);
      } else {
        out.append('%').append(String.format(Locale.ROOT, "%02X", c));
      }
    }
    return out.toString();
  }

  private static boolean sendsNoBody(MethodDescriptor method) {
    String verb = method.httpMethod();
    return verb.equals("GET") || verb.equals("DELETE");
  }

  private static void appendQuery(StringBuilder query, String name, String value) {
    if (query.length() > 0) {
      query.append('&');
    }
    query
        .append(URLEncoder.encode(name, StandardCharsets.UTF_8))
        .append('=')
        .append(URLEncoder.encode(value, StandardCharsets.UTF_8));
  }
}
