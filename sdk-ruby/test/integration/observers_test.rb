# frozen_string_literal: true

require_relative "server_helper"
require "stringio"

# Observers (spec 14) of a client against a real reference server: the
# notifications of calls, cache lookups and attempts, the client's own
# calls, failure isolation, trace context on the wire and the counters.
class ObserversTest < Minitest::Test
  include ServerTest

  SECRETS = "secinfra.v1.SecretsService"
  IDENTITY = "secinfra.v1.IdentityService"
  TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

  # Records every notification as [kind, value]; returns +trace+ (a proc
  # of the attempt) from attempt_started.
  class Recorder
    def initialize(trace = nil)
      @trace = trace
      @seen = []
      @lock = Mutex.new
    end

    %i[call_started cache attempt_finished call_finished].each do |kind|
      define_method(kind) do |value|
        @lock.synchronize { @seen << [kind, value] }
        :ignored # a return value that is not trace context is ignored
      end
    end

    def attempt_started(value)
      @lock.synchronize { @seen << [:attempt_started, value] }
      @trace&.call(value)
    end

    # Every notification so far, then forgets them.
    def take = @lock.synchronize { @seen.dup.tap { @seen.clear } }
  end

  # Raises at every notification.
  class Failing < Secinfra::Observer
    Secinfra::Runtime::Observers::KINDS.each do |kind|
      define_method(kind) { |_value| raise "observer bug in #{kind}" }
    end
  end

  def traceparent(attempt) = "00-#{TRACE_ID}-#{format("%016x", attempt)}-01"

  # The notifications as short arrays, for assert_equal.
  def summary(seen)
    seen.map do |kind, v|
      case kind
      when :call_started then [kind, v.rpc.split("/").last, v.idempotency]
      when :cache then [kind, v.rpc.split("/").last, v.result]
      when :attempt_started then [kind, v.rpc.split("/").last, v.attempt]
      when :attempt_finished then [kind, v.rpc.split("/").last, v.attempt, v.status, v.code]
      else [kind, v.rpc.split("/").last, v.ok, v.code, v.meta.attempts]
      end
    end
  end

  def header(entry, name) = entry["headers"].find { |k, _| k.casecmp?(name) }&.last

  def test_enrolment_and_calls_are_observed_in_order
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/db", value: "hunter2")
    recorder = Recorder.new
    client, = workload(folder: folder, observers: [recorder])
    assert_equal [
      [:call_started, "IssueCertificate", :non_idempotent],
      [:attempt_started, "IssueCertificate", 1],
      [:attempt_finished, "IssueCertificate", 1, 200, nil],
      [:call_finished, "IssueCertificate", true, nil, 1],
      [:call_started, "GetTrustBundle", :read_only],
      [:cache, "GetTrustBundle", :miss],
      [:attempt_started, "GetTrustBundle", 1],
      [:attempt_finished, "GetTrustBundle", 1, 200, nil],
      [:call_finished, "GetTrustBundle", true, nil, 1]
    ], summary(recorder.take), "enrolment and the first bundle fetch are calls too (spec 14.2.4)"

    client.secrets.get_secret(name: "#{folder}/db")
    client.secrets.get_secret(name: "#{folder}/db")
    seen = recorder.take
    assert_equal [
      [:call_started, "GetSecret", :read_only],
      [:cache, "GetSecret", :miss],
      [:attempt_started, "GetSecret", 1],
      [:attempt_finished, "GetSecret", 1, 200, nil],
      [:call_finished, "GetSecret", true, nil, 1],
      [:call_started, "GetSecret", :read_only],
      [:cache, "GetSecret", :hit],
      [:call_finished, "GetSecret", true, nil, 0]
    ], summary(seen)
    started = seen[2].last
    assert_equal "#{SECRETS}/GetSecret", started.rpc
    assert_equal server.url, started.endpoint
    assert_equal "GET", started.http_method
    meta = seen.last.last.meta
    assert meta.from_cache
    assert meta.frozen?, "observers get a frozen copy of the metadata"
    assert seen.all? { |_, v| v.frozen? }
    refute_includes seen.inspect, "hunter2", "no secret value in a notification (spec 14.2.5)"
  end

  def test_retries_failures_and_stale_answers_are_observed
    folder = unique
    recorder = Recorder.new
    client, = workload(folder: folder, observers: [recorder])
    recorder.take
    server.script("PutSecret", [{ "status" => 503 }, { "status" => 503 }])
    client.secrets.put_secret(name: "#{folder}/r", value: "x")
    assert_equal [
      [:call_started, "PutSecret", :non_idempotent],
      [:attempt_started, "PutSecret", 1],
      [:attempt_finished, "PutSecret", 1, 503, "unavailable"],
      [:attempt_started, "PutSecret", 2],
      [:attempt_finished, "PutSecret", 2, 503, "unavailable"],
      [:attempt_started, "PutSecret", 3],
      [:attempt_finished, "PutSecret", 3, 200, nil],
      [:call_finished, "PutSecret", true, nil, 3]
    ], summary(recorder.take)

    assert_raises(Secinfra::NotFound) { client.secrets.get_secret(name: "#{folder}/missing") }
    seen = recorder.take
    assert_equal [
      [:call_started, "GetSecret", :read_only],
      [:cache, "GetSecret", :miss],
      [:attempt_started, "GetSecret", 1],
      [:attempt_finished, "GetSecret", 1, 404, "not_found"],
      [:call_finished, "GetSecret", false, "not_found", 1]
    ], summary(seen)
    assert_equal 404, seen.last.last.meta.status

    server.script("GetSecret", [{ "reset" => "before_headers" }] * 4)
    assert_raises(Secinfra::TransportError) { client.secrets.get_secret(name: "#{folder}/r") }
    finished = recorder.take.select { |kind, _| kind == :attempt_finished }.map(&:last)
    assert_equal [1, 2, 3, 4], finished.map(&:attempt)
    assert_equal [nil], finished.map(&:status).uniq, "no answer: no status"
    assert_equal ["unavailable"], finished.map(&:code).uniq
  end

  def test_a_stale_entry_is_revalidated
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/s", value: "v1",
                             policy: Secinfra::Models::SecretPolicy.new(cache_max_age_seconds: 1,
                                                                        stale_if_error_seconds: 300))
    recorder = Recorder.new
    client, = workload(folder: folder, observers: [recorder])
    client.secrets.get_secret(name: "#{folder}/s")
    recorder.take
    sleep 1.1 # the entry is stale after max-age 1 s
    client.secrets.get_secret(name: "#{folder}/s")
    assert_equal [
      [:call_started, "GetSecret", :read_only],
      [:cache, "GetSecret", :revalidate],
      [:attempt_started, "GetSecret", 1],
      [:attempt_finished, "GetSecret", 1, 304, nil],
      [:call_finished, "GetSecret", true, nil, 1]
    ], summary(recorder.take)
  end

  def test_a_call_that_fails_before_its_first_attempt_is_still_finished_once
    recorder = Recorder.new
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(File.read(server.bundle_file)))
    client = Secinfra::Client.new(server.url, source, observers: [recorder])
    assert_raises(Secinfra::IdentityExpired) { client.secrets.get_secret(name: "a/b") }
    assert_equal [
      [:call_started, "GetSecret", :read_only],
      [:cache, "GetSecret", :miss],
      [:call_finished, "GetSecret", false, "identity_expired", 0]
    ], summary(recorder.take), "call_finished follows with no attempt in between (spec 14.2.2)"
  ensure
    client&.close
  end

  def test_trace_context_goes_on_each_attempt_and_only_when_valid
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/t", value: "v")
    invalid = Recorder.new(->(_a) { Secinfra::TraceContext.new(traceparent: "00-#{"0" * 32}-00f067aa0ba902b7-01") })
    valid = Recorder.new(lambda do |a|
      Secinfra::TraceContext.new(traceparent: traceparent(a.attempt), tracestate: "vendor=#{a.attempt}")
    end)
    late = Recorder.new(->(_a) { { "traceparent" => "00-#{"1" * 32}-#{"1" * 16}-01" } })
    client, = workload(folder: folder, observers: [invalid, valid, late])
    late.take
    server.script("GetSecret", [{ "status" => 503 }])
    seq = last_seq
    client.secrets.get_secret(name: "#{folder}/t")
    entries = log_since(seq, "GetSecret")
    assert_equal [traceparent(1), traceparent(2)], entries.map { |e| header(e, "traceparent") },
                 "the first valid trace context registered wins, per attempt (spec 14.3.2)"
    assert_equal %w[vendor=1 vendor=2], entries.map { |e| header(e, "tracestate") }
    assert_equal 2, late.take.count { |kind, _| kind == :attempt_started }, "every observer is still told"

    plain, = workload(folder: folder)
    seq = last_seq
    plain.secrets.get_secret(name: "#{folder}/t")
    entry, = log_since(seq, "GetSecret")
    assert_nil header(entry, "traceparent"), "no observer: no trace context (spec 14.3.3)"
    assert_nil header(entry, "tracestate")
  end

  def test_a_tracestate_that_is_no_header_value_is_dropped_alone
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/t", value: "v")
    bad = Recorder.new(->(a) { { traceparent: traceparent(a.attempt), tracestate: "a=1\r\nX-Injected: 1" } })
    client, = workload(folder: folder, observers: [bad])
    seq = last_seq
    client.secrets.get_secret(name: "#{folder}/t")
    entry, = log_since(seq, "GetSecret")
    assert_equal traceparent(1), header(entry, "traceparent")
    assert_nil header(entry, "tracestate")
    assert_nil header(entry, "X-Injected")
  end

  def test_a_failing_observer_changes_nothing_and_is_logged_once_per_kind
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/f", value: "v")
    log = StringIO.new
    recorder = Recorder.new(->(a) { Secinfra::TraceContext.new(traceparent: traceparent(a.attempt)) })
    client, = workload(folder: folder, observers: [Failing.new, recorder], logger: Logger.new(log))
    seq = last_seq
    3.times { client.secrets.get_secret(name: "#{folder}/f", call_options: Secinfra::CallOptions.new(use_cache: false)) }
    entries = log_since(seq, "GetSecret")
    assert_equal [traceparent(1)] * 3, entries.map { |e| header(e, "traceparent") }
    kinds = recorder.take.map(&:first)
    assert_equal 5, kinds.count(:call_finished), "two enrolment calls, three reads: the later observer is told"
    lines = log.string.lines.grep(/secinfra: observers: .*Failing failed in/)
    assert_equal Secinfra::Runtime::Observers::KINDS.map(&:to_s).sort,
                 lines.map { |l| l[/failed in (\w+)/, 1] }.sort, "logged once per observer and kind (spec 14.1.3)"
  end

  def test_counters_count_calls_attempts_and_cache_lookups
    folder = unique
    admin.secrets.put_secret(name: "#{folder}/c", value: "v")
    counters = Secinfra::Metrics::Counters.new
    client, = workload(folder: folder, observers: [counters])
    server.script("GetSecret", [{ "status" => 503 }])
    2.times { client.secrets.get_secret(name: "#{folder}/c") }
    assert_raises(Secinfra::NotFound) { client.secrets.get_secret(name: "#{folder}/none") }
    get = "#{SECRETS}/GetSecret"
    assert_equal 2, counters.calls[[get, "ok"]]
    assert_equal 1, counters.calls[[get, "not_found"]]
    assert_equal 1, counters.calls[["#{IDENTITY}/IssueCertificate", "ok"]]
    assert_equal 1, counters.attempts[[get, 503]]
    assert_equal 1, counters.attempts[[get, 200]]
    assert_equal 1, counters.attempts[[get, 404]]
    assert_equal 1, counters.cache_lookups[[get, :hit]]
    assert_equal 2, counters.cache_lookups[[get, :miss]]
    assert_equal 0, counters.cache_lookups[[get, :revalidate]]
    assert counters.calls.frozen?
  end

  def test_observers_are_checked
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(File.read(server.bundle_file)))
    error = assert_raises(ArgumentError) { Secinfra::Client.new(server.url, source, observers: [Object.new]) }
    assert_match(/observers\[0\] \(Object\) answers none of call_started/, error.message)
    assert_raises(ArgumentError) { Secinfra::Client.new(server.url, source, observers: Recorder.new) }
  end
end

# The client's own renewals are observed as calls (spec 14.2.4), and
# counted as renewals from rotation events (14.4).
class ObservedRenewalTest < Minitest::Test
  include ServerTest

  # A server of its own, so that RotationTest's request log holds only its renewals.
  def server = SharedServer.get(leaf_ttl_seconds: 4)

  def test_renewals_are_calls_to_observers_and_counted
    recorder = ObserversTest::Recorder.new
    counters = Secinfra::Metrics::Counters.new
    client, = workload(observers: [recorder, counters])
    client.on_rotation { |event| counters.rotation(event) }
    renew = "secinfra.v1.IdentityService/RenewCertificate"
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    until counters.renewals[:ok].positive? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.1
    end
    assert_operator counters.renewals[:ok], :>=, 1
    seen = recorder.take
    started = seen.index { |kind, v| kind == :call_started && v.rpc == renew }
    refute_nil started, "the renewal is a call to observers"
    finished = seen.index { |kind, v| kind == :call_finished && v.rpc == renew && v.ok }
    refute_nil finished
    assert_equal [:attempt_started, :attempt_finished], seen[(started + 1)...finished].map(&:first).uniq
    assert_operator counters.calls[[renew, "ok"]], :>=, 1
  end
end
