# frozen_string_literal: true

require "test_helper"

class BudgetTest < Minitest::Test
  Budget = Secinfra::Runtime::RetryBudget

  def test_defaults
    budget = Budget.new
    assert_equal 500, budget.tokens
    assert_equal 5, budget.cost
    assert_equal 10, budget.cost(timeout: true)
  end

  def test_spec_example
    budget = Budget.new(capacity: 12)
    assert budget.try_spend
    assert budget.try_spend
    assert_equal 2, budget.tokens
    refute budget.try_spend, "5 > 2: no retry"
    assert_equal 2, budget.tokens, "a refused retry takes nothing"
    budget.record_success
    assert_equal 3, budget.tokens
  end

  def test_refund_never_exceeds_the_capacity
    budget = Budget.new(capacity: 10)
    budget.record_success
    assert_equal 10, budget.tokens
  end

  def test_concurrent_spending_never_goes_below_zero
    budget = Budget.new(capacity: 500, retry_cost: 5)
    wins = Queue.new
    Array.new(16) { Thread.new { 20.times { wins << 1 if budget.try_spend } } }.each(&:join)
    assert_equal 100, wins.size
    assert_equal 0, budget.tokens
  end

  def test_invalid_settings_are_rejected
    assert_raises(ArgumentError) { Budget.new(capacity: -1) }
    assert_raises(ArgumentError) { Budget.new(retry_cost: 1.5) }
  end
end
