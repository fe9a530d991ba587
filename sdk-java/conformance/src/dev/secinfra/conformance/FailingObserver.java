package dev.secinfra.conformance;

import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.CallStarted;
import dev.secinfra.observe.Observer;
import dev.secinfra.observe.TraceContext;

/**
 * An observer that fails at every notification (configure.observer.failing_first, spec 14.1.3):
 * registered before the recording one, it must change nothing.
 */
final class FailingObserver implements Observer {
  private static RuntimeException failure(String kind) {
    return new IllegalStateException("conformance: the failing observer fails at " + kind);
  }

  @Override
  public void callStarted(CallStarted call) {
    throw failure("call_started");
  }

  @Override
  public void cache(CacheLookup lookup) {
    throw failure("cache");
  }

  @Override
  public TraceContext attemptStarted(AttemptStarted attempt) {
    throw failure("attempt_started");
  }

  @Override
  public void attemptFinished(AttemptFinished attempt) {
    throw failure("attempt_finished");
  }

  @Override
  public void callFinished(CallFinished call) {
    throw failure("call_finished");
  }
}
