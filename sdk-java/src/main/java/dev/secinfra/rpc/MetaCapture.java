package dev.secinfra.rpc;

import java.util.ArrayList;
import java.util.List;

/**
 * Collects the {@link ResponseMeta} of the calls made with it ({@link
 * CallOptions.Builder#capture}). Thread-safe.
 *
 * <pre>{@code
 * MetaCapture meta = new MetaCapture();
 * client.secrets().getSecret(request, CallOptions.builder().capture(meta).build());
 * boolean stale = meta.last().stale();
 * }</pre>
 */
public final class MetaCapture {
  private final List<ResponseMeta> calls = new ArrayList<>();

  /** An empty capture. */
  public MetaCapture() {}

  /**
   * Records one call's metadata (called by the runtime).
   *
   * @param meta the metadata
   */
  public synchronized void record(ResponseMeta meta) {
    calls.add(meta);
  }

  /**
   * Every call recorded, oldest first.
   *
   * @return a copy of the list
   */
  public synchronized List<ResponseMeta> calls() {
    return List.copyOf(calls);
  }

  /**
   * The last call recorded.
   *
   * @return the metadata, or null when none was recorded
   */
  public synchronized ResponseMeta last() {
    return calls.isEmpty() ? null : calls.get(calls.size() - 1);
  }
}
