package dev.secinfra.internal.cache;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;

/** Canonical JSON (spec 7.3.2): members sorted by name, no whitespace; the cache key's form. */
public final class CanonicalJson {
  private CanonicalJson() {}

  /**
   * The canonical text of {@code value}.
   *
   * @param value the JSON value
   * @return the canonical text
   */
  public static String write(JsonNode value) {
    StringBuilder out = new StringBuilder();
    append(out, value);
    return out.toString();
  }

  private static void append(StringBuilder out, JsonNode value) {
    if (value.isObject()) {
      List<String> names = new ArrayList<>();
      for (Iterator<String> it = value.fieldNames(); it.hasNext(); ) {
        names.add(it.next());
      }
      Collections.sort(names, CanonicalJson::compareCodePoints);
      out.append('{');
      for (int i = 0; i < names.size(); i++) {
        if (i > 0) {
          out.append(',');
        }
        out.append(JsonNodeFactory.instance.textNode(names.get(i)).toString());
        out.append(':');
        append(out, value.get(names.get(i)));
      }
      out.append('}');
    } else if (value.isArray()) {
      out.append('[');
      for (int i = 0; i < value.size(); i++) {
        if (i > 0) {
          out.append(',');
        }
        append(out, value.get(i));
      }
      out.append(']');
    } else {
      out.append(value.toString());
    }
  }

  private static int compareCodePoints(String a, String b) {
    return java.util.Arrays.compare(a.codePoints().toArray(), b.codePoints().toArray());
  }
}
