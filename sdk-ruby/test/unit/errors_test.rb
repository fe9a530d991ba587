# frozen_string_literal: true

require "test_helper"

class ErrorsTest < Minitest::Test
  def test_tree
    [Secinfra::InvalidArgument, Secinfra::Unauthenticated, Secinfra::PermissionDenied, Secinfra::NotFound,
     Secinfra::Conflict, Secinfra::FailedPrecondition, Secinfra::RateLimited, Secinfra::Unavailable,
     Secinfra::InternalError].each { |k| assert_operator k, :<, Secinfra::ApiError }
    assert_operator Secinfra::DeadlineExceeded, :<, Secinfra::TransportError
    refute_operator Secinfra::TransportError, :<, Secinfra::ApiError
    refute_operator Secinfra::IdentityExpired, :<, Secinfra::ApiError
    refute_operator Secinfra::IdentityExpired, :<, Secinfra::TransportError
    assert_operator Secinfra::IdentityExpired, :<, Secinfra::Error
  end

  CODES = {
    "invalid_argument" => Secinfra::InvalidArgument, "payload_too_large" => Secinfra::InvalidArgument,
    "method_not_allowed" => Secinfra::InvalidArgument, "idempotency_key_reused" => Secinfra::InvalidArgument,
    "unauthenticated" => Secinfra::Unauthenticated, "permission_denied" => Secinfra::PermissionDenied,
    "not_found" => Secinfra::NotFound, "already_exists" => Secinfra::Conflict, "conflict" => Secinfra::Conflict,
    "failed_precondition" => Secinfra::FailedPrecondition, "rate_limited" => Secinfra::RateLimited,
    "unavailable" => Secinfra::Unavailable, "deadline_exceeded" => Secinfra::Unavailable,
    "internal" => Secinfra::InternalError, "unimplemented" => Secinfra::InternalError,
    "brand_new_code" => Secinfra::InternalError
  }.freeze

  def test_code_table
    CODES.each { |code, klass| assert_equal klass, Secinfra.error_class_for(code), code }
  end

  STATUSES = {
    400 => "invalid_argument", 401 => "unauthenticated", 403 => "permission_denied", 404 => "not_found",
    405 => "method_not_allowed", 408 => "unavailable", 409 => "conflict", 412 => "failed_precondition",
    413 => "payload_too_large", 422 => "idempotency_key_reused", 429 => "rate_limited", 501 => "unimplemented",
    502 => "unavailable", 503 => "unavailable", 504 => "deadline_exceeded", 500 => "internal", 507 => "internal",
    418 => "invalid_argument"
  }.freeze

  def test_status_table
    STATUSES.each { |status, code| assert_equal code, Secinfra.code_for_status(status), status.to_s }
  end

  def test_fields_and_string_form
    error = Secinfra::NotFound.new("secinfra: secrets: no such secret", status: 404, request_id: "r-1",
                                                                         attempts: 1, details: { "a" => 1 })
    assert_equal "not_found", error.code
    assert_equal 404, error.status
    assert_equal({ "a" => 1 }, error.details)
    refute error.retryable?
    assert_equal "secinfra: secrets: no such secret (request id r-1)", error.to_s
    assert_equal "secinfra: secrets: no such secret", error.raw_message
    assert_equal "deadline_exceeded", Secinfra::DeadlineExceeded.new("x").code
    assert_equal "unavailable", Secinfra::TransportError.new("x").code
    assert_equal "identity_expired", Secinfra::IdentityExpired.new("x").code
  end
end
