package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.rpc.CallOptions;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The retry budget and the validation of client and call settings (spec 6, 1.4). */
class ClientSettingsTest {
  @Test
  void budgetFollowsTheSpecExample() {
    RetryBudget small = new RetryBudget(12, 5, 10, 1);
    assertTrue(small.tryRetry(false));
    assertTrue(small.tryRetry(false));
    assertEquals(2, small.tokens());
    assertFalse(small.tryRetry(false), "a retry the bucket cannot pay is refused");
    assertEquals(2, small.tokens(), "a refused retry takes nothing");
    small.onSuccess();
    assertEquals(3, small.tokens());
  }

  @Test
  void budgetNeverExceedsItsCapacity() {
    RetryBudget budget = new RetryBudget();
    budget.onSuccess();
    assertEquals(RetryBudget.DEFAULT_CAPACITY, budget.tokens());
    assertTrue(budget.tryRetry(true));
    assertEquals(RetryBudget.DEFAULT_CAPACITY - RetryBudget.DEFAULT_TIMEOUT_RETRY_COST, budget.tokens());
  }

  @Test
  void invalidSettingsAreRejectedWhenGiven() {
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().maxAttempts(0));
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().deadline(Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> CallOptions.builder().attemptTimeout(Duration.ofSeconds(-1)));
    dev.secinfra.errors.InvalidArgumentException refused =
        assertThrows(
            dev.secinfra.errors.InvalidArgumentException.class,
            () -> CallOptions.builder().idempotencyKey("has space"));
    assertEquals("invalid_argument", refused.code());
    assertEquals(0, refused.attempts());
    assertThrows(IllegalArgumentException.class, () -> SecinfraClient.builder("http://127.0.0.1:1"));
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().maxAttempts(-2));
    assertTrue(error.getMessage().contains("maxAttempts"));
  }

  @Test
  void callOptionsLeaveUnsetValuesToTheClient() {
    CallOptions options = CallOptions.builder().maxAttempts(1).build();
    assertEquals(1, options.maxAttempts());
    assertNull(options.deadline());
    assertNull(options.useCache());
  }
}
