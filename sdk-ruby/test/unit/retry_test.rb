# frozen_string_literal: true

require "test_helper"

class RetryTest < Minitest::Test
  include TestSupport
  Retry = Secinfra::Runtime::Retry
  Policy = Secinfra::Runtime::RetryPolicy
  NOW = Time.utc(2026, 11, 22, 8, 0, 0)

  def decide(outcome, safe: true, key: false, attempt: 1, remaining: 30.0, policy: Policy.new, budget: big_budget,
             random: Random.new(1))
    Retry.decide(outcome, policy: policy, safe_to_repeat: safe, has_key: key, attempt: attempt,
                          remaining: remaining, now: NOW, random: random, budget: budget)
  end

  def test_backoff_ceilings_match_the_spec_table
    expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    expected.each_with_index do |ceiling, i|
      assert_in_delta ceiling, Retry.backoff_ceiling(i + 1), 1e-9, "retry #{i + 1}"
    end
    assert_equal 5.0, Retry.backoff_ceiling(10_000)
  end

  def test_full_jitter_stays_within_the_ceiling_and_varies
    random = Random.new(42)
    draws = Array.new(500) { Retry.full_jitter(0.4, random) }
    assert(draws.all? { |d| d >= 0 && d <= 0.4 })
    assert_operator draws.uniq.size, :>, 400
    assert_operator draws.max, :>, 0.3
    assert_operator draws.min, :<, 0.1
  end

  def test_jitter_is_pinned_by_a_seeded_random
    assert_equal decide(response(503), random: Random.new(7)).delay, decide(response(503), random: Random.new(7)).delay
  end

  RETRYABLE = [
    # [status, headers, safe_to_repeat, retry?]
    [503, {}, false, true], [502, {}, false, true], [504, {}, false, true], [408, {}, false, true],
    [429, {}, false, true], [500, {}, true, true], [500, {}, false, false], [501, {}, true, false],
    [400, {}, true, false], [404, {}, true, false], [409, {}, true, false],
    [409, { "secinfra-should-retry" => "true" }, false, true],
    [503, { "secinfra-should-retry" => " FALSE " }, true, false],
    [503, { "secinfra-should-retry" => "maybe" }, true, true],
    [500, { "secinfra-should-retry" => "true" }, false, true]
  ].freeze

  def test_status_table
    RETRYABLE.each do |status, headers, safe, want|
      got = decide(response(status, headers), safe: safe).retry
      assert_equal want, got, "status #{status} #{headers} safe=#{safe}"
    end
  end

  def test_an_idempotency_key_does_not_make_a_500_retryable
    refute decide(response(500), safe: false, key: true).retry
  end

  def test_failures_before_and_after_sending
    assert decide(failure(sent: false), safe: false).retry
    refute decide(failure(sent: true), safe: false, key: false).retry
    assert decide(failure(sent: true), safe: false, key: true).retry
    assert decide(failure(sent: true), safe: true).retry
  end

  def test_attempt_limit
    decision = decide(response(503), attempt: 4)
    refute decision.retry
    assert_equal :attempts_exhausted, decision.reason
    assert decide(response(503), attempt: 3).retry
  end

  def test_retry_after_replaces_backoff_exactly
    decision = decide(response(503, "retry-after" => "2"))
    assert decision.retry
    assert_equal 2.0, decision.delay
  end

  def test_retry_after_over_the_cap_ends_with_its_code
    decision = decide(response(429, "retry-after" => "61"), remaining: 1000)
    refute decision.retry
    assert_equal "rate_limited", decision.code
    assert_equal 61.0, decision.retry_after
    assert_equal "unavailable", decide(response(503, "retry-after" => "120"), remaining: 1000).code
    assert decide(response(503, "retry-after" => "60"), remaining: 1000).retry, "60 s exactly is waited for"
  end

  def test_retry_after_past_the_deadline_ends_at_once
    decision = decide(response(503, "retry-after" => "5"), remaining: 5.0)
    refute decision.retry
    assert_equal :retry_after_past_deadline, decision.reason
    assert_equal "unavailable", decision.code
  end

  def test_attempt_limit_is_checked_before_retry_after
    decision = decide(response(503, "retry-after" => "120"), attempt: 4)
    assert_equal :attempts_exhausted, decision.reason
    assert_nil decision.code
  end

  def test_parse_retry_after_forms
    assert_equal 120.0, Retry.parse_retry_after(" 120 ", NOW)
    assert_equal 0.0, Retry.parse_retry_after("0", NOW)
    assert_equal 3.0, Retry.parse_retry_after("Sun, 22 Nov 2026 08:00:03 GMT", NOW)
    assert_equal 3.0, Retry.parse_retry_after("Sunday, 22-Nov-26 08:00:03 GMT", NOW)
    assert_equal 3.0, Retry.parse_retry_after("Sun Nov 22 08:00:03 2026", NOW)
    assert_equal 0.0, Retry.parse_retry_after("Sun, 22 Nov 2026 07:00:00 GMT", NOW), "a past date means now"
    ["-1", "1.5", "", "soon", "1e3"].each { |bad| assert_nil Retry.parse_retry_after(bad, NOW), bad }
  end

  def test_invalid_retry_after_falls_back_to_backoff
    decision = decide(response(503, "retry-after" => "1.5"))
    assert decision.retry
    assert_operator decision.delay, :<=, 0.1
  end

  def test_budget_is_charged_last_and_only_for_real_retries
    budget = Secinfra::Runtime::RetryBudget.new(capacity: 12)
    assert decide(response(503), budget: budget).retry
    assert_equal 7, budget.tokens
    decide(response(503), attempt: 4, budget: budget)
    assert_equal 7, budget.tokens, "no retry, no charge"
    assert decide(response(503), budget: budget).retry
    decision = decide(response(503), budget: budget)
    refute decision.retry
    assert_equal :budget_exhausted, decision.reason
    assert_equal 2, budget.tokens
  end

  def test_timeout_retries_cost_more
    budget = Secinfra::Runtime::RetryBudget.new(capacity: 100)
    decide(failure(sent: true, timeout: true), budget: budget)
    assert_equal 90, budget.tokens
  end

  def test_policy_validation_names_the_setting
    error = assert_raises(ArgumentError) { Policy.new(max_attempts: 0) }
    assert_match(/max_attempts/, error.message)
    assert_match(/deadline/, assert_raises(ArgumentError) { Policy.new(deadline: 0) }.message)
    assert_match(/attempt_timeout/, assert_raises(ArgumentError) { Policy.new(attempt_timeout: Float::INFINITY) }.message)
    assert_match(/base_backoff/, assert_raises(ArgumentError) { Policy.new(base_backoff: -1) }.message)
    assert_match(/max_attempts/, assert_raises(ArgumentError) { Secinfra::CallOptions.new(max_attempts: 0) }.message)
  end

  def test_call_options_win_over_the_client_policy
    merged = Policy.new(max_attempts: 4, deadline: 30).merged(Secinfra::CallOptions.new(max_attempts: 1))
    assert_equal 1, merged.max_attempts
    assert_equal 30.0, merged.deadline
  end

  def test_caller_supplied_idempotency_keys_are_checked
    assert_equal "k-1", Secinfra::CallOptions.new(idempotency_key: "k-1").idempotency_key
    ["", "has space", "x" * 256, "caf\u00e9"].each do |bad|
      assert_raises(Secinfra::InvalidArgument, bad) { Secinfra::CallOptions.new(idempotency_key: bad) }
    end
  end
end
