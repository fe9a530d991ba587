# frozen_string_literal: true

require "time"

module Secinfra
  module Runtime
    # The retry settings of a client or of one call (spec 3), with their
    # defaults; the rules that use them are {Retry}'s.
    class RetryPolicy
      # Attempts in all, the first included (1 + 3 retries).
      MAX_ATTEMPTS = 4
      # Seconds: the backoff ceiling before the first retry; doubles per retry.
      BASE_BACKOFF = 0.1
      # Seconds: the backoff ceiling never grows past this.
      MAX_BACKOFF = 5.0
      # Seconds: a longer Retry-After ends the call instead of waiting.
      MAX_RETRY_AFTER = 60.0
      # Seconds for a whole call.
      DEADLINE = 30.0
      # Seconds for one attempt.
      ATTEMPT_TIMEOUT = 10.0
      # Statuses retried whatever the call's idempotency.
      ALWAYS_RETRYABLE_STATUSES = [408, 429, 502, 503, 504].freeze
      # Statuses retried only when the call is safe to repeat.
      SAFE_RETRYABLE_STATUSES = [500].freeze
      RETRY_AFTER_HEADER = "retry-after"
      SHOULD_RETRY_HEADER = "secinfra-should-retry"
      # Past this many doublings any base is over any sane cap.
      MAX_DOUBLINGS = 62

      attr_reader :max_attempts, :base_backoff, :max_backoff, :max_retry_after, :deadline, :attempt_timeout

      # @raise [ArgumentError] naming an invalid setting
      def initialize(max_attempts: MAX_ATTEMPTS, base_backoff: BASE_BACKOFF, max_backoff: MAX_BACKOFF,
                     max_retry_after: MAX_RETRY_AFTER, deadline: DEADLINE, attempt_timeout: ATTEMPT_TIMEOUT)
        RPC::CallOptions.check_retry_settings(max_attempts: max_attempts, base_backoff: base_backoff,
                                              max_backoff: max_backoff, max_retry_after: max_retry_after,
                                              deadline: deadline, attempt_timeout: attempt_timeout)
        @max_attempts = max_attempts
        @base_backoff = base_backoff.to_f
        @max_backoff = max_backoff.to_f
        @max_retry_after = max_retry_after.to_f
        @deadline = deadline.to_f
        @attempt_timeout = attempt_timeout.to_f
        freeze
      end

      # This policy with the non-nil values of +options+ laid over it.
      #
      # @param options [RPC::CallOptions, nil]
      # @return [RetryPolicy]
      def merged(options)
        return self if options.nil?

        RetryPolicy.new(
          max_attempts: options.max_attempts || @max_attempts,
          base_backoff: options.base_backoff || @base_backoff,
          max_backoff: options.max_backoff || @max_backoff,
          max_retry_after: options.max_retry_after || @max_retry_after,
          deadline: options.deadline || @deadline,
          attempt_timeout: options.attempt_timeout || @attempt_timeout
        )
      end
    end

    # An attempt that got an HTTP response (headers: lower-case names).
    AttemptResponse = Struct.new(:status, :headers)
    # An attempt that got no response; +sent+: the request may have been sent.
    AttemptFailure = Struct.new(:sent, :timeout)

    # What to do after a failed attempt. +attempt_outcome+ says how the
    # attempt ended ("status 503"); +after_timeout+ that it timed out (a
    # retry then costs the budget more).
    RetryDecision = Struct.new(:retry, :delay, :reason, :message, :code, :retry_after, :attempt_outcome,
                               :after_timeout, keyword_init: true)

    # The retry rules of spec 3.4, in order, as pure functions: {decide}
    # reads only its arguments (the jitter comes from the +random+ it is
    # given) and changes nothing. The budget is charged after it, by
    # {charge}, so the budget is the last rule and only real retries pay.
    module Retry
      module_function

      # The most the +retry+-th retry (1-based) may wait.
      def backoff_ceiling(retry_number, base: RetryPolicy::BASE_BACKOFF, cap: RetryPolicy::MAX_BACKOFF)
        raise ArgumentError, "secinfra: retry: retries are counted from 1" if retry_number < 1

        [cap, base * (2.0**[retry_number - 1, RetryPolicy::MAX_DOUBLINGS].min)].min
      end

      # A delay drawn uniformly from [0, ceiling] ("full jitter").
      #
      # @param random [Random] the client's replaceable random source
      def full_jitter(ceiling, random)
        random.rand * ceiling
      end

      # Seconds a Retry-After value asks for, or nil when invalid (spec 3.6).
      #
      # @param value [String]
      # @param now [Time] the wall clock
      def parse_retry_after(value, now)
        text = value.to_s.strip
        return Float(text.to_i) if text.match?(/\A[0-9]+\z/)

        when_t = http_date(text)
        return nil if when_t.nil?

        [0.0, when_t - now].max
      end

      # IMF-fixdate, RFC 850 and asctime forms (Ruby's Time.httpdate reads all
      # three), as UTC; nil when +text+ is none of them.
      def http_date(text)
        return nil if text.empty?

        Time.httpdate(text)
      rescue ArgumentError
        nil
      end

      # The server's Secinfra-Should-Retry verdict: true, false or nil.
      def should_retry(headers)
        value = headers[RetryPolicy::SHOULD_RETRY_HEADER]
        return nil if value.nil?

        case value.strip.downcase
        when "true" then true
        when "false" then false
        end
      end

      # Whether a response status is retryable for the call (spec 3.3 b-f).
      def status_retryable?(status, headers, safe_to_repeat)
        verdict = should_retry(headers)
        return verdict unless verdict.nil?
        return true if RetryPolicy::ALWAYS_RETRYABLE_STATUSES.include?(status)
        return safe_to_repeat if RetryPolicy::SAFE_RETRYABLE_STATUSES.include?(status)

        false
      end

      # Decide whether to retry after attempt +attempt+ ended in +outcome+
      # (the retry budget aside: see {charge}).
      #
      # @param outcome [AttemptResponse, AttemptFailure]
      # @param policy [RetryPolicy] the call's settings
      # @param safe_to_repeat [Boolean] the RPC is read-only or idempotent
      # @param has_key [Boolean] the request carries an Idempotency-Key
      # @param attempt [Integer] the attempt that failed (1-based)
      # @param remaining [Float] seconds left before the call's deadline
      # @param now [Time] the wall clock (for an HTTP-date Retry-After)
      # @param random [Random] the jitter source
      # @return [RetryDecision]
      def decide(outcome, policy:, safe_to_repeat:, has_key:, attempt:, remaining:, now:, random:)
        retry_after = nil
        code_if_too_long = "unavailable"
        timeout = false
        if outcome.is_a?(AttemptResponse)
          unless status_retryable?(outcome.status, outcome.headers, safe_to_repeat)
            raw = outcome.headers[RetryPolicy::RETRY_AFTER_HEADER]
            ra = raw && parse_retry_after(raw, now)
            reason = should_retry(outcome.headers) == false ? :server_said_no : :not_retryable
            return give_up(reason, "status #{outcome.status} is not retried", retry_after: ra)
          end
          raw = outcome.headers[RetryPolicy::RETRY_AFTER_HEADER]
          retry_after = parse_retry_after(raw, now) if raw
          code_if_too_long = "rate_limited" if outcome.status == 429
          what = "status #{outcome.status}"
        else
          if outcome.sent && !(safe_to_repeat || has_key)
            return give_up(:unsafe_to_resend,
                           "the request may have reached the server and the call is not safe to send again")
          end

          timeout = outcome.timeout
          what = (outcome.timeout ? "timeout" : "connection failure") + (outcome.sent ? " after sending" : " before sending")
        end
        if attempt >= policy.max_attempts
          return give_up(:attempts_exhausted, "#{what}: gave up after #{attempt} of #{policy.max_attempts} attempts",
                         retry_after: retry_after)
        end
        return give_up(:deadline_exceeded, "#{what}: the deadline has passed", retry_after: retry_after) if remaining <= 0

        if retry_after
          if retry_after > policy.max_retry_after
            return give_up(:retry_after_too_long,
                           "#{what}: the server asks to retry after #{fmt(retry_after)} s, more than the " \
                           "#{fmt(policy.max_retry_after)} s the client waits",
                           code: code_if_too_long, retry_after: retry_after)
          end
          if retry_after >= remaining
            return give_up(:retry_after_past_deadline,
                           "#{what}: the server asks to retry after #{fmt(retry_after)} s, but only " \
                           "#{fmt(remaining)} s are left before the deadline",
                           code: code_if_too_long, retry_after: retry_after)
          end
          delay = retry_after
        else
          delay = full_jitter(backoff_ceiling(attempt, base: policy.base_backoff, cap: policy.max_backoff), random)
        end
        if delay >= remaining
          return give_up(:deadline_exceeded,
                         "#{what}: the next attempt in #{fmt(delay)} s would not start before the deadline",
                         retry_after: retry_after)
        end
        RetryDecision.new(retry: true, delay: delay, reason: :retryable, message: "#{what}: retrying",
                          retry_after: retry_after, attempt_outcome: what, after_timeout: timeout)
      end

      # Pays for a decision to retry from +budget+ (spec 6.3); a bucket that
      # cannot pay turns it into giving up. Any other decision passes as it is.
      #
      # @param decision [RetryDecision] from {decide}
      # @param budget [RetryBudget]
      # @return [RetryDecision]
      def charge(decision, budget)
        return decision if !decision.retry || budget.try_spend(timeout: decision.after_timeout)

        give_up(:budget_exhausted, "#{decision.attempt_outcome}: the retry budget is spent",
                retry_after: decision.retry_after)
      end

      def give_up(reason, message, code: nil, retry_after: nil)
        RetryDecision.new(retry: false, delay: 0.0, reason: reason, message: message, code: code,
                          retry_after: retry_after)
      end

      def fmt(seconds)
        format("%.3g", seconds)
      end
    end
  end
end
