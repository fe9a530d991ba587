package dev.secinfra.internal.observe;

import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.CallStarted;
import dev.secinfra.observe.Observer;
import dev.secinfra.observe.TraceContext;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.regex.Pattern;

/**
 * A client's observers, notified in the order registered (spec 14.1.1). An observer that throws
 * neither fails the call nor stops the others (14.1.3): its failure is logged once per observer
 * and kind of notification, at WARNING on the logger {@code dev.secinfra.observe}. Only a {@link
 * VirtualMachineError} (out of memory, stack overflow) goes on up: nothing can be relied on after
 * one. Of the trace contexts the observers return at an attempt's start the first valid one wins
 * (14.3.2). With no observer every method returns at once. Thread-safe.
 */
public final class Observers {
  /** No observer: the client behaves exactly as without this feature (spec 14.1.2). */
  public static final Observers NONE = new Observers(List.of());

  private static final System.Logger LOG = System.getLogger("dev.secinfra.observe");
  private static final Pattern TRACEPARENT =
      Pattern.compile("00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}");
  private static final String ZERO_TRACE_ID = "0".repeat(32);
  private static final String ZERO_PARENT_ID = "0".repeat(16);
  /** The longest {@code tracestate} sent (W3C Trace Context: 32 members of at most 256 chars). */
  static final int MAX_TRACESTATE = 512;

  /** The kinds of notification, each logged once per observer. */
  private enum Kind {
    CALL_STARTED,
    CACHE,
    ATTEMPT_STARTED,
    ATTEMPT_FINISHED,
    CALL_FINISHED
  }

  /** One observer and the kinds whose failure was logged already (one bit per kind). */
  private static final class Registered {
    final Observer observer;
    final AtomicInteger logged = new AtomicInteger();

    Registered(Observer observer) {
      this.observer = observer;
    }
  }

  private final Registered[] observers;
  private final AtomicLong ids = new AtomicLong();

  /**
   * The observers, in the order they are notified.
   *
   * @param observers the observers (none null)
   */
  public Observers(List<Observer> observers) {
    this.observers = observers.stream().map(Registered::new).toArray(Registered[]::new);
  }

  /**
   * Whether there is no observer.
   *
   * @return true when none is registered
   */
  public boolean none() {
    return observers.length == 0;
  }

  /**
   * Notifies {@code call_started}.
   *
   * @param rpc the RPC's full name
   * @param idempotency its idempotency class
   * @return the call's id for the later notifications (0 when there is no observer)
   */
  public long callStarted(String rpc, dev.secinfra.rpc.Idempotency idempotency) {
    if (none()) {
      return 0;
    }
    CallStarted event = new CallStarted(ids.incrementAndGet(), rpc, idempotency);
    notifyAll(Kind.CALL_STARTED, o -> o.callStarted(event));
    return event.callId();
  }

  /**
   * Notifies {@code cache}.
   *
   * @param lookup the cache's answer
   */
  public void cache(CacheLookup lookup) {
    notifyAll(Kind.CACHE, o -> o.cache(lookup));
  }

  /**
   * Notifies {@code attempt_started} and picks the trace context the attempt sends.
   *
   * @param attempt the attempt
   * @return the first valid trace context an observer returned, or null
   */
  public TraceContext attemptStarted(AttemptStarted attempt) {
    TraceContext chosen = null;
    for (Registered r : observers) {
      TraceContext returned;
      try {
        returned = r.observer.attemptStarted(attempt);
      } catch (VirtualMachineError e) {
        throw e;
      } catch (Throwable e) {
        failed(r, Kind.ATTEMPT_STARTED, e);
        continue;
      }
      if (chosen == null && returned != null) {
        chosen = checked(returned);
      }
    }
    return chosen;
  }

  /**
   * Notifies {@code attempt_finished}.
   *
   * @param attempt the attempt's outcome
   */
  public void attemptFinished(AttemptFinished attempt) {
    notifyAll(Kind.ATTEMPT_FINISHED, o -> o.attemptFinished(attempt));
  }

  /**
   * Notifies {@code call_finished}.
   *
   * @param call the call's outcome
   */
  public void callFinished(CallFinished call) {
    notifyAll(Kind.CALL_FINISHED, o -> o.callFinished(call));
  }

  /**
   * The trace context as sent: null when its {@code traceparent} is invalid (spec 14.3.2); without
   * its {@code tracestate} when that one is empty or not a header value the client may send.
   *
   * @param context what an observer returned
   * @return the context to send, or null
   */
  static TraceContext checked(TraceContext context) {
    String parent = context.traceparent();
    if (!TRACEPARENT.matcher(parent).matches()
        || parent.substring(3, 35).equals(ZERO_TRACE_ID)
        || parent.substring(36, 52).equals(ZERO_PARENT_ID)) {
      return null;
    }
    String state = context.tracestate();
    if (state == null || state.isBlank() || state.length() > MAX_TRACESTATE || !printable(state)) {
      return state == null ? context : TraceContext.of(parent);
    }
    return context;
  }

  /** Printable ASCII (space to tilde): never a line break or a control character. */
  private static boolean printable(String value) {
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c < 0x20 || c > 0x7e) {
        return false;
      }
    }
    return true;
  }

  private void notifyAll(Kind kind, Consumer<Observer> notification) {
    for (Registered r : observers) {
      try {
        notification.accept(r.observer);
      } catch (VirtualMachineError e) {
        throw e;
      } catch (Throwable e) {
        failed(r, kind, e);
      }
    }
  }

  private static void failed(Registered r, Kind kind, Throwable error) {
    int bit = 1 << kind.ordinal();
    int before = r.logged.getAndUpdate(bits -> bits | bit);
    if ((before & bit) != 0) {
      return;
    }
    try {
      LOG.log(
          System.Logger.Level.WARNING,
          "secinfra: observe: observer "
              + r.observer.getClass().getName()
              + " failed at "
              + kind.name().toLowerCase(java.util.Locale.ROOT)
              + " (logged once per observer and notification; the call goes on)",
          error);
    } catch (RuntimeException e) {
      // A broken logging backend does not fail the call either.
    }
  }
}
