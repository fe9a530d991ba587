package dev.secinfra;

import java.time.Duration;
import java.util.Optional;

/**
 * One endpoint of a client as the client sees it now, for metrics and tests (spec 12.8.4); from
 * {@link SecinfraClient#endpoints()}.
 *
 * @param url the endpoint URL as configured (a trailing {@code /} removed)
 * @param failures endpoint failures in a row (connection failures, 502, 503, 504); 0 after any
 *     other outcome
 * @param coolingFor how much longer the endpoint is cooling down (avoided while another endpoint
 *     is not), or empty when it is not cooling down
 */
public record EndpointState(String url, int failures, Optional<Duration> coolingFor) {
  /**
   * Whether the endpoint is cooling down: attempts go to another endpoint that is not.
   *
   * @return true while cooling down
   */
  public boolean coolingDown() {
    return coolingFor.isPresent();
  }
}
