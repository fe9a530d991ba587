# frozen_string_literal: true

module Secinfra
  module Runtime
    # The per-client retry budget: a token bucket (spec 6). Retries spend
    # tokens, successes earn them back, an empty bucket stops retries (never
    # first attempts). Thread-safe.
    class RetryBudget
      # Tokens in a full bucket.
      CAPACITY = 500
      # Tokens a retry costs.
      RETRY_COST = 5
      # Tokens a retry after a timed-out attempt costs.
      TIMEOUT_RETRY_COST = 10
      # Tokens a successful call adds back.
      SUCCESS_REFUND = 1

      attr_reader :capacity, :retry_cost, :timeout_retry_cost, :success_refund

      # @raise [ArgumentError] on a negative or non-integer setting
      def initialize(capacity: CAPACITY, retry_cost: RETRY_COST, timeout_retry_cost: TIMEOUT_RETRY_COST,
                     success_refund: SUCCESS_REFUND)
        { budget_capacity: capacity, retry_cost: retry_cost, timeout_retry_cost: timeout_retry_cost,
          success_refund: success_refund }.each do |name, value|
          unless value.is_a?(Integer) && value >= 0
            raise ArgumentError, "secinfra: retry: #{name} must be an integer >= 0, got #{value.inspect}"
          end
        end
        @capacity = capacity
        @retry_cost = retry_cost
        @timeout_retry_cost = timeout_retry_cost
        @success_refund = success_refund
        @tokens = capacity
        @lock = Mutex.new
      end

      # @return [Integer] tokens left (for metrics and tests)
      def tokens
        @lock.synchronize { @tokens }
      end

      # Takes the cost of one retry, atomically; false (nothing taken) when the
      # bucket cannot pay.
      #
      # @param timeout [Boolean] the failed attempt timed out
      # @return [Boolean]
      def try_spend(timeout: false)
        cost = timeout ? @timeout_retry_cost : @retry_cost
        @lock.synchronize do
          return false if @tokens < cost

          @tokens -= cost
          true
        end
      end

      # The cost {#try_spend} would take.
      def cost(timeout: false) = timeout ? @timeout_retry_cost : @retry_cost

      # Adds the success refund, never beyond the capacity.
      def record_success
        @lock.synchronize { @tokens = [@tokens + @success_refund, @capacity].min }
      end

      def inspect = "#<Secinfra::Runtime::RetryBudget tokens=#{tokens}/#{@capacity}>"
    end
  end
end
