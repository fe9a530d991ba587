package dev.secinfra.internal.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.errors.DeadlineExceededException;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.NotFoundException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Concurrent misses of one key share one request (spec 7.8). */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class SingleFlightTest {
  private static final long FAR = Long.MAX_VALUE / 2;
  private final ExecutorService pool = Executors.newFixedThreadPool(8);
  private final SingleFlight<String> flights = new SingleFlight<>(System::nanoTime);

  @AfterEach
  void stop() {
    pool.shutdownNow();
  }

  @Test
  void concurrentCallersShareTheLeadersResult() throws Exception {
    AtomicInteger fetches = new AtomicInteger();
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch arrived = new CountDownLatch(8);
    List<Future<String>> calls = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      calls.add(
          pool.submit(
              () -> {
                arrived.countDown();
                return flights.run(
                      "k",
                      System.nanoTime() + FAR,
                      () -> {
                        fetches.incrementAndGet();
                        await(release);
                        return "value";
                      });
              }));
    }
    assertTrue(arrived.await(10, TimeUnit.SECONDS));
    Thread.sleep(200); // every caller is inside run() by now, the leader held by the latch
    release.countDown();
    for (Future<String> call : calls) {
      assertEquals("value", call.get(10, TimeUnit.SECONDS));
    }
    assertEquals(1, fetches.get(), "one request for the concurrent misses");
  }

  @Test
  void waitersGetTheLeadersErrorAndTheNextCallFetchesAgain() throws Exception {
    NotFoundException failure =
        new NotFoundException(ErrorInfo.of("not_found", "secinfra: test: missing", false, 1), null);
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Future<String> leader =
        pool.submit(
            () ->
                flights.run(
                    "k",
                    System.nanoTime() + FAR,
                    () -> {
                      started.countDown();
                      await(release);
                      throw failure;
                    }));
    started.await();
    Future<String> waiter =
        pool.submit(() -> flights.run("k", System.nanoTime() + FAR, () -> "not this one"));
    Thread.sleep(100);
    release.countDown();
    ExecutionException led = assertThrows(ExecutionException.class, () -> leader.get(10, TimeUnit.SECONDS));
    assertSame(failure, led.getCause());
    ExecutionException waited = assertThrows(ExecutionException.class, () -> waiter.get(10, TimeUnit.SECONDS));
    assertSame(failure, waited.getCause());
    assertEquals("again", flights.run("k", System.nanoTime() + FAR, () -> "again"));
  }

  @Test
  void aWaiterStopsAtItsOwnDeadline() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Future<String> leader =
        pool.submit(
            () ->
                flights.run(
                    "k",
                    System.nanoTime() + FAR,
                    () -> {
                      started.countDown();
                      await(release);
                      return "late";
                    }));
    started.await();
    DeadlineExceededException error =
        assertThrows(
            DeadlineExceededException.class,
            () -> flights.run("k", System.nanoTime() + 50_000_000L, () -> "not this one"));
    assertEquals("deadline_exceeded", error.code());
    release.countDown();
    assertEquals("late", leader.get(10, TimeUnit.SECONDS));
  }

  private static void await(CountDownLatch latch) {
    try {
      assertTrue(latch.await(10, TimeUnit.SECONDS));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
