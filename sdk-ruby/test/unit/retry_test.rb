# frozen_string_literal: true

require "test_helper"

# The pure retry decision (runtime/retry.rb): tables of name / input / want.
class RetryTest < Minitest::Test
  include TestSupport
  Retry = Secinfra::Runtime::Retry
  Policy = Secinfra::Runtime::RetryPolicy
  NOW = Time.utc(2026, 11, 22, 8, 0, 0)

  def decide(outcome, safe: true, key: false, attempt: 1, remaining: 30.0, policy: Policy.new, random: Random.new(1))
    Retry.decide(outcome, policy: policy, safe_to_repeat: safe, has_key: key, attempt: attempt,
                          remaining: remaining, now: NOW, random: random)
  end

  # The decision after the budget has been charged, as the pipeline makes it.
  def decide_and_charge(outcome, budget:, **input)
    Retry.charge(decide(outcome, **input), budget)
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

  def test_decide_is_pure
    outcome = response(503, "retry-after" => "1")
    assert_equal decide(outcome), decide(outcome), "same input, same decision"
    assert_equal({ "retry-after" => "1" }, outcome.headers, "the outcome is left as it was")
  end

  STATUSES = [
    # name, status, headers, safe_to_repeat, want retry?
    ["503 is retried", 503, {}, false, true],
    ["502 is retried", 502, {}, false, true],
    ["504 is retried", 504, {}, false, true],
    ["408 is retried", 408, {}, false, true],
    ["429 is retried", 429, {}, false, true],
    ["500 is retried when safe to repeat", 500, {}, true, true],
    ["500 is not retried on a write", 500, {}, false, false],
    ["501 is never retried", 501, {}, true, false],
    ["400 is not retried", 400, {}, true, false],
    ["404 is not retried", 404, {}, true, false],
    ["409 is not retried", 409, {}, true, false],
    ["the server's true wins over a 409", 409, { "secinfra-should-retry" => "true" }, false, true],
    ["the server's false wins, any case and spacing", 503, { "secinfra-should-retry" => " FALSE " }, true, false],
    ["an unknown verdict is ignored", 503, { "secinfra-should-retry" => "maybe" }, true, true],
    ["the server's true wins over a 500 on a write", 500, { "secinfra-should-retry" => "true" }, false, true]
  ].freeze

  def test_status_table
    STATUSES.each do |name, status, headers, safe, want|
      assert_equal want, decide(response(status, headers), safe: safe).retry, name
    end
  end

  def test_an_idempotency_key_does_not_make_a_500_retryable
    refute decide(response(500), safe: false, key: true).retry
  end

  FAILURES = [
    # name, sent, safe_to_repeat, has_key, want retry?
    ["before sending: always", false, false, false, true],
    ["after sending a write without a key: never", true, false, false, false],
    ["after sending a write with a key", true, false, true, true],
    ["after sending a safe call", true, true, false, true]
  ].freeze

  def test_failures_before_and_after_sending
    FAILURES.each do |name, sent, safe, key, want|
      assert_equal want, decide(failure(sent: sent), safe: safe, key: key).retry, name
    end
  end

  GIVING_UP = [
    # name, input, want reason, want code
    ["the attempt limit", { outcome: [503, {}], attempt: 4 }, :attempts_exhausted, nil],
    ["the attempt limit before Retry-After", { outcome: [503, { "retry-after" => "120" }], attempt: 4 },
     :attempts_exhausted, nil],
    ["a 429 Retry-After over the cap", { outcome: [429, { "retry-after" => "61" }], remaining: 1000 },
     :retry_after_too_long, "rate_limited"],
    ["a 503 Retry-After over the cap", { outcome: [503, { "retry-after" => "120" }], remaining: 1000 },
     :retry_after_too_long, "unavailable"],
    ["a Retry-After past the deadline", { outcome: [503, { "retry-after" => "5" }], remaining: 5.0 },
     :retry_after_past_deadline, "unavailable"],
    ["the deadline has passed", { outcome: [503, {}], remaining: 0 }, :deadline_exceeded, nil]
  ].freeze

  def test_giving_up_table
    GIVING_UP.each do |name, input, reason, code|
      status, headers = input[:outcome]
      decision = decide(response(status, headers), **input.except(:outcome))
      refute decision.retry, name
      assert_equal reason, decision.reason, name
      if code.nil?
        assert_nil decision.code, name
      else
        assert_equal code, decision.code, name
      end
    end
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

  RETRY_AFTER = [
    # name, value, want seconds (nil: invalid)
    ["delta-seconds with spaces", " 120 ", 120.0],
    ["zero", "0", 0.0],
    ["IMF-fixdate", "Sun, 22 Nov 2026 08:00:03 GMT", 3.0],
    ["RFC 850 date", "Sunday, 22-Nov-26 08:00:03 GMT", 3.0],
    ["asctime date", "Sun Nov 22 08:00:03 2026", 3.0],
    ["a past date means now", "Sun, 22 Nov 2026 07:00:00 GMT", 0.0],
    ["negative", "-1", nil],
    ["a fraction", "1.5", nil],
    ["empty", "", nil],
    ["a word", "soon", nil],
    ["an exponent", "1e3", nil]
  ].freeze

  def test_parse_retry_after_forms
    RETRY_AFTER.each do |name, value, want|
      if want.nil?
        assert_nil Retry.parse_retry_after(value, NOW), name
      else
        assert_equal want, Retry.parse_retry_after(value, NOW), name
      end
    end
  end

  def test_invalid_retry_after_falls_back_to_backoff
    decision = decide(response(503, "retry-after" => "1.5"))
    assert decision.retry
    assert_operator decision.delay, :<=, 0.1
  end

  def test_budget_is_charged_last_and_only_for_real_retries
    budget = Secinfra::Runtime::RetryBudget.new(capacity: 12)
    assert decide_and_charge(response(503), budget: budget).retry
    assert_equal 7, budget.tokens
    decide_and_charge(response(503), attempt: 4, budget: budget)
    assert_equal 7, budget.tokens, "no retry, no charge"
    assert decide_and_charge(response(503), budget: budget).retry
    decision = decide_and_charge(response(503), budget: budget)
    refute decision.retry
    assert_equal :budget_exhausted, decision.reason
    assert_equal 2, budget.tokens
    assert_match(/status 503: the retry budget is spent/, decision.message)
  end

  def test_timeout_retries_cost_more
    budget = Secinfra::Runtime::RetryBudget.new(capacity: 100)
    decide_and_charge(failure(sent: true, timeout: true), budget: budget)
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

  def test_revalidate_must_be_a_boolean
    assert Secinfra::CallOptions.new(revalidate: true).revalidate
    assert_match(/revalidate/, assert_raises(ArgumentError) { Secinfra::CallOptions.new(revalidate: "yes") }.message)
  end
end
