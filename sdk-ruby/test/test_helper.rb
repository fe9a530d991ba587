# frozen_string_literal: true

require "minitest/autorun"
require "secinfra"
require "secinfra/testing"

# Shared helpers for the unit tests.
module TestSupport
  # A retry budget that never runs out (for rule tests that are not about it).
  def big_budget = Secinfra::Runtime::RetryBudget.new(capacity: 1_000_000)

  def response(status, headers = {}) = Secinfra::Runtime::AttemptResponse.new(status, headers)

  def failure(sent:, timeout: false) = Secinfra::Runtime::AttemptFailure.new(sent, timeout)
end
