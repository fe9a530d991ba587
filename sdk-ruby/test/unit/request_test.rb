# frozen_string_literal: true

require "test_helper"

# How one attempt's URL and body are built from a descriptor (spec 2.2, 2.3).
class RequestTest < Minitest::Test
  M = Secinfra::Models
  # What a transport asks of its source when it is made.
  SOURCE = Object.new.tap { |s| s.define_singleton_method(:subscribe) { |_| nil } }

  Request = Secinfra::Runtime::Request

  def encode(descriptor, request, **options)
    Request.encode_request(descriptor, request.to_h, base_path: "/base", user_agent: "ua", **options)
  end

  def build(descriptor, request)
    encoded = encode(descriptor, request)
    [encoded.path, encoded.body]
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

  def test_empty_repeated_field_is_left_out_of_the_body
    _, body = build(M::SecretsClient::UNDELETE_SECRET, M::UndeleteSecretRequest.new(name: "app/db"))
    assert_equal({}, JSON.parse(body))
    _, body = build(M::SecretsClient::UNDELETE_SECRET, M::UndeleteSecretRequest.new(name: "app/db", versions: [2]))
    assert_equal({ "versions" => [2] }, JSON.parse(body))
  end

  def test_user_agent
    assert_match(%r{\Asecinfra-ruby/0\.1\.0 \(ruby/\d+\.\d+\.\d+\)\z}, Request.user_agent)
  end

  def test_the_server_urls_path_prefixes_every_request
    transport = Secinfra::Runtime::Transport.new("https://127.0.0.1:1/base/", SOURCE,
                                                 clock: Secinfra::Runtime::SystemClock.new)
    assert_equal "/base", transport.base_path
    assert_equal "/base", transport.endpoints.home.base_path
    assert_equal "https://127.0.0.1:1/base", transport.endpoints.home.url
  end

  def test_headers_of_a_write_and_of_a_conditional_read
    put = encode(M::SecretsClient::PUT_SECRET, M::PutSecretRequest.new(name: "a", value: "v"))
    assert_equal "PUT", put.http_method
    assert_equal "application/json", put.headers["Content-Type"]
    assert_match(/\A\h{8}-\h{4}-4\h{3}-[89ab]\h{3}-\h{12}\z/, put.headers["Idempotency-Key"])
    keyed = encode(M::SecretsClient::PUT_SECRET, M::PutSecretRequest.new(name: "a"), idempotency_key: "k-1")
    assert_equal "k-1", keyed.headers["Idempotency-Key"]
    get = encode(M::SecretsClient::GET_SECRET, M::GetSecretRequest.new(name: "a"), if_none_match: '"e1"')
    assert_equal({ "User-Agent" => "ua", "Accept" => "application/json", "If-None-Match" => '"e1"' }, get.headers)
    assert_nil get.body
  end
end
