# frozen_string_literal: true

require "test_helper"

# How one attempt's URL and body are built from a descriptor (spec 2.2, 2.3).
class RequestTest < Minitest::Test
  M = Secinfra::Models

  def transport
    source = Object.new
    def source.subscribe(_) = nil
    def source.server_id = "spiffe://x/secinfra/server"
    Secinfra::Runtime::Transport.new("https://127.0.0.1:1/base/", source, policy: Secinfra::Runtime::RetryPolicy.new,
                                                                          budget: Secinfra::Runtime::RetryBudget.new,
                                                                          cache: Secinfra::Runtime::ResponseCache.new,
                                                                          clock: Secinfra::Runtime::SystemClock.new,
                                                                          random: Random.new(1))
  end

  def build(descriptor, request)
    transport.send(:path_and_body, descriptor, request.to_h)
  end

  def test_multi_segment_variable_keeps_slashes_and_query_follows
    path, body = build(M::SecretsClient::GET_SECRET, M::GetSecretRequest.new(name: "payments/db password", version: 2))
    assert_equal "/base/v1/secrets/payments/db%20password?version=2", path
    assert_nil body
  end

  def test_single_segment_variable_escapes_slash_with_upper_case_hex
    path, = build(M::IdentityClient::REVOKE_JOIN_TOKEN, M::RevokeJoinTokenRequest.new(id: "a/b\u00e9"))
    assert_equal "/base/v1/join-tokens/a%2Fb%C3%A9", path
  end

  def test_no_normalisation
    path, = build(M::SecretsClient::GET_SECRET, M::GetSecretRequest.new(name: "a//../b"))
    assert path.start_with?("/base/v1/secrets/a//../b?")
  end

  def test_repeated_query_fields_and_empty_lists
    path, = build(M::SecretsClient::DELETE_SECRET, M::DeleteSecretRequest.new(name: "app/db", versions: [3, 4]))
    assert_equal "/base/v1/secrets/app/db?versions=3&versions=4", path
    path, = build(M::SecretsClient::DELETE_SECRET, M::DeleteSecretRequest.new(name: "app/db"))
    assert_equal "/base/v1/secrets/app/db", path
  end

  def test_body_without_path_fields
    path, body = build(M::SecretsClient::PUT_SECRET, M::PutSecretRequest.new(name: "app/db", value: "hunter2",
                                                                             if_version: 0))
    assert_equal "/base/v1/secrets/app/db", path
    assert_equal({ "value" => "aHVudGVyMg==", "if_version" => 0 }, JSON.parse(body))
  end

  def test_user_agent
    assert_match(%r{\Asecinfra-ruby/0\.1\.0 \(ruby/\d+\.\d+\.\d+\)\z}, Secinfra::Runtime::Transport.user_agent)
  end
end
