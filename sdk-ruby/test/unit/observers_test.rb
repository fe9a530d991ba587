# frozen_string_literal: true

require "test_helper"
require "stringio"

# Observers (runtime/observers.rb, observer.rb, metrics.rb): which trace
# context is sent (spec 14.3.2), failure isolation (14.1.3), and the repeat
# of an attempt after a trust-bundle refresh (14.2.3) over a scripted
# transport. The notifications of real calls: test/integration/observers_test.rb.
class ObserversUnitTest < Minitest::Test
  include TestCerts
  Runtime = Secinfra::Runtime
  Observers = Secinfra::Runtime::Observers
  VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

  TRACE_CASES = [
    { name: "a trace context", returned: Secinfra::TraceContext.new(traceparent: VALID, tracestate: "a=1,b=2"),
      want: { "traceparent" => VALID, "tracestate" => "a=1,b=2" } },
    { name: "a carrier hash, any key case", returned: { "TraceParent" => VALID, tracestate: "a=1" },
      want: { "traceparent" => VALID, "tracestate" => "a=1" } },
    { name: "no tracestate", returned: Secinfra::TraceContext.new(traceparent: VALID), want: { "traceparent" => VALID } },
    { name: "nil", returned: nil, want: {} },
    { name: "not trace context", returned: [:recorded], want: {} },
    { name: "a hash without traceparent", returned: { "tracestate" => "a=1" }, want: {} },
    { name: "upper-case hex", returned: { "traceparent" => VALID.upcase }, want: {} },
    { name: "version ff", returned: { "traceparent" => VALID.sub(/\A00/, "ff") }, want: {} },
    { name: "a short parent id", returned: { "traceparent" => VALID.sub("00f067aa0ba902b7", "00f067aa") }, want: {} },
    { name: "an all-zero trace id", returned: { "traceparent" => "00-#{"0" * 32}-00f067aa0ba902b7-01" }, want: {} },
    { name: "an all-zero parent id", returned: { "traceparent" => "00-4bf92f3577b34da6a3ce929d0e0e4736-#{"0" * 16}-01" },
      want: {} },
    { name: "a trailing newline", returned: { "traceparent" => "#{VALID}\n" }, want: {} },
    { name: "an invalid one with a tracestate", returned: { "traceparent" => "00-x", "tracestate" => "a=1" }, want: {} },
    { name: "a tracestate with CR LF", returned: { "traceparent" => VALID, "tracestate" => "a=1\r\nX: y" },
      want: { "traceparent" => VALID } },
    { name: "a tracestate too long", returned: { "traceparent" => VALID, "tracestate" => "a=#{"b" * 511}" },
      want: { "traceparent" => VALID } },
    { name: "a tracestate not a string", returned: { "traceparent" => VALID, "tracestate" => 7 },
      want: { "traceparent" => VALID } }
  ].freeze

  def test_trace_headers
    TRACE_CASES.each do |c|
      assert_equal c[:want], Observers.trace_headers(c[:returned]), c[:name]
    end
  end

  # Records [kind, value]; attempt_started returns +trace+.
  class Recorder
    attr_reader :seen

    def initialize(trace = nil)
      @trace = trace
      @seen = []
    end

    def call_started(v) = @seen << [:call_started, v]
    def cache(v) = @seen << [:cache, v]
    def attempt_finished(v) = @seen << [:attempt_finished, v]
    def call_finished(v) = @seen << [:call_finished, v]

    def attempt_started(value)
      @seen << [:attempt_started, value]
      @trace
    end
  end

  # Raises at every notification.
  class Failing < Secinfra::Observer
    Observers::KINDS.each { |kind| define_method(kind) { |_| raise ArgumentError, "bug in #{kind}" } }
  end

  def descriptor = Secinfra::V1::IdentityClient::GET_TRUST_BUNDLE

  def test_the_first_valid_trace_context_wins_and_every_observer_is_told
    invalid = Recorder.new(Secinfra::TraceContext.new(traceparent: "00-bad"))
    first = Recorder.new(Secinfra::TraceContext.new(traceparent: VALID, tracestate: "first=1"))
    second = Recorder.new({ "traceparent" => VALID.sub("00f0", "11f0"), "tracestate" => "second=1" })
    observers = Observers.new([invalid, Failing.new, first, second], logger: Logger.new(StringIO.new))
    headers = observers.attempt_started("r", 1, "https://127.0.0.1:1", "GET")
    assert_equal({ "traceparent" => VALID, "tracestate" => "first=1" }, headers)
    assert_equal [1, 1, 1], [invalid, first, second].map { |o| o.seen.size }
  end

  def test_a_failing_observer_is_logged_once_per_kind_and_stops_no_other
    log = StringIO.new
    recorder = Recorder.new
    failing = Failing.new
    observers = Observers.new([failing, Secinfra::Observer.new, recorder], logger: Logger.new(log))
    2.times do
      observers.call_started(descriptor)
      observers.cache("r", :miss)
      observers.attempt_started("r", 1, "https://127.0.0.1:1", "GET")
      observers.attempt_finished("r", 1, "https://127.0.0.1:1", status: 200, code: nil)
      observers.call_finished("r", error: Secinfra::NotFound.new("secinfra: gone", attempts: 1, status: 404))
    end
    assert_equal %i[call_started cache attempt_started attempt_finished call_finished] * 2, recorder.seen.map(&:first)
    lines = log.string.lines
    assert_equal 5, lines.size, "once per observer and kind"
    assert(lines.all? { |l| l.include?("ObserversUnitTest::Failing failed in") })
    finished = recorder.seen.last.last
    refute finished.ok
    assert_equal "not_found", finished.code
    assert_equal [1, 404], [finished.meta.attempts, finished.meta.status]
  end

  def test_no_observer_makes_no_value
    observers = Observers.new([])
    assert observers.empty?
    assert_equal({}, observers.attempt_started("r", 1, "https://127.0.0.1:1", "GET"))
  end

  def test_observers_must_be_an_array_of_observers
    assert_raises(ArgumentError) { Observers.new(Recorder.new) }
    error = assert_raises(ArgumentError) { Observers.new([Recorder.new, 42]) }
    assert_match(/observers\[1\] \(Integer\)/, error.message)
  end

  def test_values_are_frozen
    value = Secinfra::AttemptFinished.new(rpc: "r", attempt: 1, endpoint: "e", status: nil, code: "unavailable")
    assert value.frozen?
    assert_raises(FrozenError) { value.code = "x" }
  end

  # Answers scripted outcomes; records each attempt's headers.
  class ScriptedTransport
    attr_reader :endpoints, :requests

    def initialize(outcomes, clock)
      @outcomes = outcomes
      @requests = []
      @endpoints = Runtime::EndpointSet.new("https://127.0.0.1:1", clock: clock, random: Random.new(1))
    end

    def exchange(request, **)
      @requests << request.headers.dup
      @outcomes.shift or raise "no outcome scripted"
    end

    def close = nil
  end

  # A static source whose bundle refresh is a call through the pipeline
  # (as RotatingIdentity's is) and finds a newer bundle.
  class RefreshingSource < Secinfra::StaticIdentity
    attr_accessor :client

    def refresh_bundle
      @client.get_trust_bundle(call_options: Secinfra::CallOptions.new(revalidate: true))
      true
    end
  end

  BUNDLE = JSON.generate({ "keys" => [], "spiffe_sequence" => 3, "spiffe_refresh_hint" => 300 })

  def test_the_repeat_after_a_bundle_refresh_is_an_attempt_with_the_same_number
    clock = Secinfra::Testing::FakeClock.new
    transport = ScriptedTransport.new([
                                        Runtime::Transport::VerificationFailure.new(:chain, "does not chain"),
                                        Runtime::Answer.new(200, { "cache-control" => "no-store" }, BUNDLE, 0),
                                        Runtime::Answer.new(200, {}, "{}", 0)
                                      ], clock)
    source = RefreshingSource.new(Secinfra::Identity.load_bundle(ca.first.to_pem))
    recorder = Recorder.new(Secinfra::TraceContext.new(traceparent: VALID))
    pipeline = Runtime::CallPipeline.new(transport, source, policy: Runtime::RetryPolicy.new,
                                                            budget: Runtime::RetryBudget.new,
                                                            cache: Runtime::ResponseCache.new(clock: clock),
                                                            clock: clock, random: Random.new(1),
                                                            observers: Observers.new([recorder]))
    source.client = Secinfra::V1::IdentityClient.new(pipeline)
    source.client.issue_certificate(csr_pem: "csr", join_token: "token")
    summary = recorder.seen.map do |kind, v|
      case kind
      when :attempt_started then [kind, v.attempt]
      when :attempt_finished then [kind, v.attempt, v.status, v.code]
      when :call_finished then [kind, v.ok, v.meta.attempts]
      when :cache then [kind, v.result]
      else [kind]
      end
    end
    assert_equal [
      [:call_started],
      [:attempt_started, 1], [:attempt_finished, 1, nil, "unavailable"],
      [:call_started], [:cache, :miss], [:attempt_started, 1], [:attempt_finished, 1, 200, nil],
      [:call_finished, true, 1],
      [:attempt_started, 1], [:attempt_finished, 1, 200, nil],
      [:call_finished, true, 1]
    ], summary, "the refresh is a call of its own; the repeat is attempt 1 again (spec 14.2.3, 14.2.4)"
    assert_equal [VALID] * 3, transport.requests.map { |h| h["traceparent"] }
  end

  def test_counters_count_renewals_from_rotation_events
    counters = Secinfra::Metrics::Counters.new
    %i[enrolled renewed renewed renewal_failed expired bundle_updated].each do |kind|
      counters.rotation(Secinfra::RotationEvent.new(kind: kind))
    end
    assert_equal({ ok: 2, failed: 1 }, counters.renewals)
    assert_equal 0, counters.calls[["r", "ok"]], "an unseen key counts 0"
  end
end
