# frozen_string_literal: true

require "test_helper"

# An identity from fixed files or values (identity/static.rb).
class StaticTest < Minitest::Test
  include TestCerts
  Identity = Secinfra::Identity

  def test_static_identity_expires
    ca_cert, ca_key = ca
    key = Identity.new_private_key
    cert = leaf(ca_cert, ca_key, key, ["spiffe://secinfra.local/app"], not_after: Time.now + 60)
    clock = Secinfra::Testing::FakeClock.new(now: Time.now.utc)
    identity = Identity.parse_identity(cert.to_pem, key, received_at: clock.now)
    source = Secinfra::StaticIdentity.new(Identity.load_bundle(ca_cert.to_pem), identity, clock: clock)
    assert_kind_of Identity::Source, source
    assert_equal identity, source.ensure_identity
    clock.advance(61)
    error = assert_raises(Secinfra::IdentityExpired) { source.ensure_identity }
    assert_match(/static identity cannot renew/, error.message)
    refute source.refresh_bundle
  end
end
