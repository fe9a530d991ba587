package dev.secinfra.internal.cache;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A client's response cache (spec 7): an LRU of at most {@code maxEntries} entries, invalidation
 * by family and resource key, and write marks for read-your-writes. Thread-safe; values live in
 * memory only and {@link #toString()} never shows them.
 */
public final class ResponseCache {
  /** Entries held at most, by default. */
  public static final int DEFAULT_MAX_ENTRIES = 1024;

  /** One cached answer. Never printed with its value. */
  public static final class Entry {
    private final JsonNode body;
    private final String etag;
    private final CacheControl control;
    private final long maxAgeNanos;
    private final long staleIfErrorNanos;
    private final long storedAtNanos;
    private final String revision;
    private final String family;
    private final String resourceKey;
    private final String requestId;
    private final int status;

    /**
     * An entry.
     *
     * @param body the response body
     * @param etag the ETag, or null
     * @param control the response's Cache-Control
     * @param storedAtNanos when it was received (monotonic), less its Age
     * @param revision the response's revision token, or null
     * @param family the cache family
     * @param resourceKey the resource key, or empty
     * @param requestId the answering request id
     * @param status the answering status
     */
    public Entry(
        JsonNode body,
        String etag,
        CacheControl control,
        long storedAtNanos,
        String revision,
        String family,
        String resourceKey,
        String requestId,
        int status) {
      this.body = body;
      this.etag = etag;
      this.control = control;
      this.maxAgeNanos = control.maxAgeSeconds() * 1_000_000_000L;
      this.staleIfErrorNanos = control.staleIfErrorSeconds() * 1_000_000_000L;
      this.storedAtNanos = storedAtNanos;
      this.revision = revision;
      this.family = family;
      this.resourceKey = resourceKey;
      this.requestId = requestId;
      this.status = status;
    }

    /**
     * The cached response body.
     *
     * @return the body
     */
    public JsonNode body() {
      return body;
    }

    /**
     * The response's ETag, which makes a revalidation conditional.
     *
     * @return the ETag, or null
     */
    public String etag() {
      return etag;
    }

    /**
     * The response's Cache-Control, kept when a 304 carries none.
     *
     * @return the directives
     */
    public CacheControl control() {
      return control;
    }

    /**
     * The response's revision token, compared with the family's write mark.
     *
     * @return the token, or null
     */
    public String revision() {
      return revision;
    }

    /**
     * Whether the entry may be served without asking the server (within max-age).
     *
     * @param now the monotonic time
     * @return true when fresh
     */
    public boolean fresh(long now) {
      return now - storedAtNanos < maxAgeNanos;
    }

    /**
     * Whether the entry may stand in for a failed server (within max-age plus stale-if-error).
     *
     * @param now the monotonic time
     * @return true when usable on error
     */
    public boolean usableOnError(long now) {
      return now - storedAtNanos < maxAgeNanos + staleIfErrorNanos;
    }

    @Override
    public String toString() {
      return "Entry{family=" + family + ", etag=" + etag + ", value=<redacted>}";
    }
  }

  /**
   * A call's cache key (spec 7.3.1): the canonical JSON of {@code {"method": ..., "request":
   * ...}}, so the key covers the whole request and two requests share it only when equal. Its
   * hash comes from the request's values as the text is written (see {@link CanonicalJson}),
   * not from hashing the text again on every lookup.
   */
  public static final class Key {
    private final String text;
    private final int hash;

    private Key(String text, int hash) {
      this.text = text;
      this.hash = hash;
    }

    /**
     * The canonical text.
     *
     * @return the text
     */
    public String text() {
      return text;
    }

    @Override
    public boolean equals(Object other) {
      return other instanceof Key key && key.hash == hash && key.text.equals(text);
    }

    @Override
    public int hashCode() {
      return hash;
    }

    @Override
    public String toString() {
      return text;
    }
  }

  /**
   * The cache key of a call (spec 7.3.1, 7.3.2).
   *
   * @param method the full method name
   * @param request the request's JSON form
   * @return the key
   */
  public static Key key(String method, JsonNode request) {
    CanonicalJson.Writer key = new CanonicalJson.Writer(256);
    key.raw("{\"method\":").string(method).raw(",\"request\":").value(request).raw("}");
    return new Key(key.text(), key.hash());
  }

  /**
   * The cache key of a call to {@code service + "/" + rpc}, the same as {@link #key(String,
   * JsonNode)} on the joined name, without joining it.
   *
   * @param service the service's full name
   * @param rpc the RPC's name
   * @param request the request's JSON form
   * @return the key
   */
  public static Key key(String service, String rpc, JsonNode request) {
    CanonicalJson.Writer key = new CanonicalJson.Writer(256);
    key.raw("{\"method\":").joined(service, '/', rpc).raw(",\"request\":").value(request);
    key.raw("}");
    return new Key(key.text(), key.hash());
  }

  private final int maxEntries;
  private final LinkedHashMap<Key, Entry> entries;
  private final Map<String, Long> generations = new HashMap<>();
  private final Map<String, String> marks = new HashMap<>();

  /**
   * An empty cache.
   *
   * @param maxEntries entries held at most (at least 1)
   */
  public ResponseCache(int maxEntries) {
    if (maxEntries < 1) {
      throw new IllegalArgumentException("secinfra: config: cacheMaxEntries must be at least 1");
    }
    this.maxEntries = maxEntries;
    this.entries = new LinkedHashMap<>(16, 0.75f, true);
  }

  /**
   * The entry for {@code key}, made most recently used; entries older than the family's write
   * mark, and useless ones, are dropped and not returned.
   *
   * @param key the cache key
   * @param now the monotonic time
   * @return the entry or null
   */
  public synchronized Entry lookup(Key key, long now) {
    Entry entry = entries.get(key);
    if (entry == null) {
      return null;
    }
    if (!acceptable(entry.family, entry.revision)
        || (!entry.fresh(now) && !entry.usableOnError(now) && entry.etag == null)) {
      entries.remove(key);
      return null;
    }
    return entry;
  }

  /**
   * The family's invalidation generation; a response to a request sent under an older generation
   * is not stored (spec 7.9.2).
   *
   * @param family the family
   * @return the generation
   */
  public synchronized long generation(String family) {
    return generations.getOrDefault(family, 0L);
  }

  /**
   * Stores an entry unless an invalidation happened since {@code generation} or its revision is
   * older than the family's write mark. Evicts the least recently used entry when full.
   *
   * @param key the cache key
   * @param entry the entry
   * @param generation the family's generation when the request was sent
   * @return true when stored
   */
  public synchronized boolean store(Key key, Entry entry, long generation) {
    if (generation(entry.family) != generation || !acceptable(entry.family, entry.revision)) {
      return false;
    }
    entries.remove(key);
    while (entries.size() >= maxEntries) {
      Iterator<Key> eldest = entries.keySet().iterator();
      eldest.next();
      eldest.remove();
    }
    entries.put(key, entry);
    return true;
  }

  /**
   * Drops the entry for {@code key}.
   *
   * @param key the cache key
   */
  public synchronized void drop(Key key) {
    entries.remove(key);
  }

  /**
   * Own-write invalidation (spec 7.9.1): with a resource key, the family's entries of that key and
   * those with an empty key; without one, the whole family.
   *
   * @param family the family
   * @param resourceKey the resource key, or null for the whole family
   */
  public synchronized void invalidate(String family, String resourceKey) {
    generations.merge(family, 1L, Long::sum);
    entries
        .values()
        .removeIf(
            e ->
                e.family.equals(family)
                    && (resourceKey == null
                        || e.resourceKey.isEmpty()
                        || e.resourceKey.equals(resourceKey)));
  }

  /**
   * Records a write's revision token as the family's write mark, keeping the highest; a token
   * that does not parse replaces the mark.
   *
   * @param family the family
   * @param token the revision token
   */
  public synchronized void mark(String family, String token) {
    String current = marks.get(family);
    if (current == null
        || !Revision.parses(token)
        || !Revision.parses(current)
        || Revision.compare(token, current) > 0) {
      marks.put(family, token);
    }
  }

  /** Drops every entry (write marks stay). */
  public synchronized void clear() {
    entries.clear();
  }

  /**
   * Entries held.
   *
   * @return the count
   */
  public synchronized int size() {
    return entries.size();
  }

  private boolean acceptable(String family, String revision) {
    String mark = marks.get(family);
    if (mark == null) {
      return true;
    }
    if (!Revision.parses(revision) || !Revision.parses(mark)) {
      return false;
    }
    return Revision.compare(revision, mark) >= 0;
  }

  @Override
  public synchronized String toString() {
    return "ResponseCache{entries=" + entries.size() + ", maxEntries=" + maxEntries + "}";
  }
}
