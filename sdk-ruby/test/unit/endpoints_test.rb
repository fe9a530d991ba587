# frozen_string_literal: true

require "test_helper"

# Several endpoints (spec 12): the endpoint set (runtime/endpoints.rb) on a
# fake clock, and the call pipeline moving attempts between endpoints over a
# scripted transport (the real-server side is in
# test/integration/endpoints_test.rb).
class EndpointsTest < Minitest::Test
  include TestCerts
  Runtime = Secinfra::Runtime
  A = "https://127.0.0.1:1001"
  B = "https://127.0.0.1:1002"
  C = "https://127.0.0.1:1003"

  def setup
    @clock = Secinfra::Testing::FakeClock.new
  end

  def set(urls = [A, B, C], **settings)
    Runtime::EndpointSet.new(urls, clock: @clock, random: Random.new(7), order: :listed, **settings)
  end

  def urls(endpoint_set) = endpoint_set.endpoints.map(&:url)

  def test_one_url_is_a_list_of_that_url_and_always_chosen
    one = Runtime::EndpointSet.new("#{A}/", clock: @clock, random: Random.new(1))
    assert_equal [A], urls(one), "a trailing / is removed"
    5.times { one.record(one.home, failure: true) }
    assert_equal A, one.choose.url, "with one endpoint nothing moves (12.3.3)"
  end

  def test_bad_lists_are_refused_at_creation_naming_the_setting
    [
      [[], /give at least one URL/],
      [[A, "#{A}/"], /listed twice: #{Regexp.escape(A)}/],
      [["http://127.0.0.1:1"], %r{must be https://}],
      [["https://"], %r{must be https://}],
      [[A], /endpoint_order must be :random or :listed/, { order: :nearest }],
      [[A], /endpoint_cooldown must be a finite number of seconds above 0/, { cooldown: 0 }],
      [[A], /endpoint_cooldown_max must be a finite/, { cooldown_max: Float::INFINITY }],
      [[A], /endpoint_cooldown_max must be at least endpoint_cooldown/, { cooldown: 5, cooldown_max: 2 }]
    ].each do |given, message, settings = {}|
      error = assert_raises(ArgumentError, given.inspect) do
        Runtime::EndpointSet.new(given, clock: @clock, random: Random.new(1), **settings)
      end
      assert_match message, error.message
    end
  end

  def test_user_info_is_refused_and_never_echoed
    error = assert_raises(ArgumentError) do
      Runtime::EndpointSet.new([A, "https://ops:hunter2@127.0.0.1:9"], clock: @clock, random: Random.new(1))
    end
    assert_match(/must not carry user-info/, error.message)
    refute_includes error.message, "hunter2"
  end

  def test_the_order_is_the_list_rotated_to_the_home_endpoint
    assert_equal [A, B, C], urls(set), "listed: the first URL is home"
    homes = (0...30).map do |seed|
      Runtime::EndpointSet.new([A, B, C], clock: @clock, random: Random.new(seed)).endpoints.map(&:url)
    end
    assert_equal [[A, B, C], [B, C, A], [C, A, B]].sort, homes.uniq.sort, "random: every rotation, nothing else"
  end

  def test_a_failed_endpoint_cools_down_doubling_to_the_maximum_and_is_tried_again
    s = set(cooldown: 1.0, cooldown_max: 3.0)
    a = s.home
    s.record(a, failure: true)
    assert_equal B, s.choose.url, "a is cooling for 1 s"
    @clock.advance(1.0)
    assert_equal A, s.choose.url, "cooled down: back home, no probe needed"
    s.record(a, failure: true)
    @clock.advance(1.9)
    assert_equal B, s.choose.url, "the 2nd failure in a row: 2 s"
    @clock.advance(0.1)
    s.record(a, failure: true)
    @clock.advance(2.9)
    assert_equal B, s.choose.url, "the 3rd: 4 s, capped at 3"
    @clock.advance(0.1)
    assert_equal A, s.choose.url
    state = s.states.first
    assert_equal 3, state.failures
    assert_nil state.cooling_until
  end

  def test_any_other_outcome_ends_the_cooldown
    s = set
    s.record(s.home, failure: true)
    s.record(s.home, failure: false)
    assert_equal A, s.choose.url
    assert_equal [0, nil], [s.states.first.failures, s.states.first.cooling_until]
  end

  def test_when_all_cool_down_the_oldest_failure_is_chosen
    s = set
    b, c, a = s.endpoints.values_at(1, 2, 0)
    s.record(b, failure: true)
    @clock.advance(0.1)
    s.record(c, failure: true)
    @clock.advance(0.1)
    s.record(a, failure: true)
    assert_equal B, s.choose.url
    assert(s.states.all?(&:cooling_until))
  end

  def test_the_status_of_an_endpoint_failure
    assert Runtime::EndpointSet.endpoint_failure?(nil), "no answer"
    [502, 503, 504].each { |status| assert Runtime::EndpointSet.endpoint_failure?(status) }
    [200, 304, 400, 429, 500].each { |status| refute Runtime::EndpointSet.endpoint_failure?(status), status }
  end

  # Answers exchanges from a script of [endpoint URL => answer] and records
  # where each request went.
  class ScriptedTransport
    attr_reader :endpoints, :sent

    def initialize(endpoints, script)
      @endpoints = endpoints
      @script = script
      @sent = []
    end

    def exchange(request, endpoint:, mtls:, identity:, timeout:)
      raise "no identity for an auth-NONE call" if mtls || identity || !timeout.positive?

      @sent << [endpoint.url, request.headers.dup, request.path]
      answer = @script.fetch(endpoint.url).shift or raise "no answer scripted for #{endpoint.url}"
      answer.is_a?(Runtime::Answer) ? answer.dup : answer
    end

    def close = nil
  end

  def answer(status, headers = {})
    body = status == 200 ? JSON.generate({ "keys" => [], "spiffe_sequence" => 3 }) : "{}"
    Runtime::Answer.new(status, headers, body, 0)
  end

  def refused = [Runtime::AttemptFailure.new(false, false), Errno::ECONNREFUSED.new]

  def pipeline(script, endpoint_set = set([A, B]))
    @transport = ScriptedTransport.new(endpoint_set, script)
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(ca.first.to_pem))
    @budget = Runtime::RetryBudget.new
    pipeline = Runtime::CallPipeline.new(@transport, source, policy: Runtime::RetryPolicy.new, budget: @budget,
                                                             cache: Runtime::ResponseCache.new(clock: @clock),
                                                             clock: @clock, random: Random.new(1), use_cache: false)
    Secinfra::V1::IdentityClient.new(pipeline)
  end

  def test_a_503_moves_the_next_attempt_as_an_ordinary_retry
    client = pipeline({ A => [answer(503)], B => [answer(200)] })
    captured = Secinfra.capture { client.get_trust_bundle }
    assert_equal [A, B], @transport.sent.map(&:first)
    assert_equal %w[1 2], @transport.sent.map { |_, h, _| h["Secinfra-Attempt"] }, "a move is the next attempt"
    assert_equal B, captured.last.endpoint
    assert_equal 2, captured.last.attempts
    assert_operator @budget.tokens, :<, Runtime::RetryBudget::CAPACITY, "the move paid the retry cost"
  end

  def test_a_connection_failure_moves_and_the_failed_endpoint_is_avoided_then_tried_again
    client = pipeline({ A => [refused, answer(200)], B => [answer(200), answer(200)] })
    client.get_trust_bundle
    client.get_trust_bundle
    assert_equal [A, B, B], @transport.sent.map(&:first), "a is cooling: the next call starts at b"
    @clock.advance(Runtime::EndpointSet::COOLDOWN)
    captured = Secinfra.capture { client.get_trust_bundle }
    assert_equal A, captured.last.endpoint, "back home once the cooldown ended"
    assert_equal 1, captured.last.attempts
  end

  def test_a_429_or_500_does_not_cool_the_endpoint_down
    [429, 500].each do |status|
      s = set([A, B])
      client = pipeline({ A => [answer(status, "secinfra-should-retry" => "false")] }, s)
      assert_raises(Secinfra::Error) { client.get_trust_bundle }
      assert_equal [0, nil], [s.states.first.failures, s.states.first.cooling_until], status
    end
  end

  def test_an_error_names_the_last_attempts_endpoint
    client = pipeline({ A => [refused] * 4, B => [refused] * 4 })
    error = assert_raises(Secinfra::TransportError) { client.get_trust_bundle }
    assert_equal @transport.sent.last.first, error.endpoint
    assert_includes error.message, error.endpoint, "a transport error's message names the endpoint"
  end

  def test_a_verification_failure_never_moves_the_call
    failure = Runtime::Transport::VerificationFailure.new(:spiffe_id, "the server presented SPIFFE ID x")
    s = set([A, B])
    client = pipeline({ A => [failure] }, s)
    error = assert_raises(Secinfra::TransportError) { client.get_trust_bundle }
    assert_equal [A], @transport.sent.map(&:first)
    assert_equal A, error.endpoint
    assert_equal 0, s.states.first.failures, "not an endpoint failure"
  end

  def test_the_endpoint_path_prefix_is_the_transports_and_the_request_is_the_same_everywhere
    client = pipeline({ A => [answer(503)], B => [answer(200)] })
    client.get_trust_bundle
    first, second = @transport.sent
    assert_equal first[2], second[2], "one path; the transport adds each endpoint's prefix"
    assert_equal first[1].except("Secinfra-Attempt"), second[1].except("Secinfra-Attempt")
  end
end
