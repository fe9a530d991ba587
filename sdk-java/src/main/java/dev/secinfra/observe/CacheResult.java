package dev.secinfra.observe;

/** What the cache answered for a call (spec 14.2.1, 7). */
public enum CacheResult {
  /** A fresh entry answers; no request is made. */
  HIT("hit"),
  /** No entry; the request that follows fetches the value. */
  MISS("miss"),
  /** A stale entry (or one the call asked to revalidate), revalidated by the request that follows. */
  REVALIDATE("revalidate");

  private final String wire;

  CacheResult(String wire) {
    this.wire = wire;
  }

  /**
   * The result's lowercase name ({@code hit}, {@code miss}, {@code revalidate}).
   *
   * @return the name
   */
  public String wire() {
    return wire;
  }
}
