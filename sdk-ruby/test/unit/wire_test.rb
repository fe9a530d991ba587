# frozen_string_literal: true

require "test_helper"

class WireTest < Minitest::Test
  M = Secinfra::Models

  def test_secret_round_trip_and_redaction
    secret = M::Secret.from_h({ "name" => "app/db", "version" => 3, "value" => "aHVudGVyMg==",
                                "create_time" => "2026-11-22T08:00:00Z", "future_field" => 1 })
    assert_equal "hunter2", secret.value
    assert_equal Time.utc(2026, 11, 22, 8), secret.create_time
    refute_includes secret.inspect, "hunter2"
    refute_includes secret.to_s, "hunter2"
    assert_equal "aHVudGVyMg==", secret.to_h["value"]
  end

  def test_join_tokens_are_redacted_in_inspect
    request = M::IssueCertificateRequest.new(csr_pem: "csr", join_token: "sjt_abc.secret")
    refute_includes request.inspect, "sjt_abc.secret"
  end

  def test_id_tokens_are_redacted_in_inspect
    request = M::IssueCertificateRequest.new(csr_pem: "x", oidc_id_token: "eyJ.secret.sig")
    refute_includes request.inspect, "eyJ.secret.sig"
    assert_includes request.inspect, "oidc_id_token=[REDACTED"
  end

  def test_presence_fields
    assert_equal({ "name" => "a", "value" => "" }, M::PutSecretRequest.new(name: "a").to_h)
    assert_equal 0, M::PutSecretRequest.new(name: "a", if_version: 0).to_h["if_version"]
  end

  def test_unknown_enums_read_as_unspecified
    meta = M::SecretVersionMetadata.from_h({ "state" => "vaporised" })
    assert_equal M::VersionState::UNSPECIFIED, meta.state
  end

  def test_messages_are_frozen_values
    a = M::TupleKey.new(user: "u", relation: "r", object: "o")
    assert a.frozen?
    assert_equal a, M::TupleKey.new(user: "u", relation: "r", object: "o")
    assert_equal a.hash, M::TupleKey.new(user: "u", relation: "r", object: "o").hash
  end
end
