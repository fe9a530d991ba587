# frozen_string_literal: true

require "test_helper"

# Client settings checked at creation (client.rb).
class ClientUnitTest < Minitest::Test
  include TestCerts

  def test_client_refuses_plain_http
    cert, = ca
    source = Secinfra::StaticIdentity.new(Secinfra::Identity.load_bundle(cert.to_pem))
    error = assert_raises(ArgumentError) { Secinfra::Client.new("http://127.0.0.1:1", source) }
    assert_match(/https/, error.message)
    assert_raises(ArgumentError) { Secinfra::Client.new("https://127.0.0.1:1", source, cache_size: 0) }
    assert_raises(ArgumentError) { Secinfra::Client.new("https://127.0.0.1:1", source, bogus: 1) }
  end

  def test_invalid_rotation_settings_are_refused_before_enrolment
    error = assert_raises(ArgumentError) do
      Secinfra::Client.enrol("https://127.0.0.1:1", join_token: "sjt_x.y", bundle_pem: ca.first.to_pem,
                                                    identity_settings: { renewal_retry_max: -1 })
    end
    assert_match(/renewal_retry_max/, error.message)
  end
end
