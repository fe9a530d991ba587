# frozen_string_literal: true

require "test_helper"

# The trust bundle: parsing, sequence, refresh hint, server ID, chain
# verification (identity/bundle.rb).
class BundleTest < Minitest::Test
  include TestCerts
  Identity = Secinfra::Identity

  def test_pem_bundle_and_server_id
    cert, = ca("example.org")
    bundle = Identity.load_bundle("\n#{cert.to_pem}")
    assert_equal 0, bundle.sequence
    assert_equal "spiffe://example.org/secinfra/server", Identity.server_id_for(bundle)
  end

  def test_spiffe_bundle_takes_first_x5c_of_x509_svid_entries_only
    a, = ca
    b, = ca
    doc = {
      "keys" => [
        { "use" => "x509-svid", "x5c" => [Base64.strict_encode64(a.to_der), Base64.strict_encode64(b.to_der)] },
        { "use" => "jwt-svid", "x5c" => [Base64.strict_encode64(b.to_der)] },
        { "use" => "x509-svid", "x5c" => [] },
        { "use" => "x509-svid" }
      ],
      "spiffe_sequence" => 7, "spiffe_refresh_hint" => 2, "unknown" => true
    }
    bundle = Identity.load_bundle(JSON.generate(doc))
    assert_equal [a.to_der], bundle.certificates.map(&:to_der)
    assert_equal 7, bundle.sequence
    assert_equal 2.0, bundle.refresh_hint
  end

  def test_bundles_without_an_authority_are_rejected
    assert_raises(Identity::IdentityError) { Identity.load_bundle('{"keys": [{"use": "jwt-svid"}]}') }
    assert_raises(Identity::IdentityError) { Identity.load_bundle("not a pem") }
    assert_raises(Identity::IdentityError) { Identity.load_bundle("{broken") }
  end

  def test_a_new_certificate_must_chain_to_the_bundle
    ca_cert, ca_key = ca
    other_cert, = ca # same name, another key: an impostor
    key = Identity.new_private_key
    cert = leaf(ca_cert, ca_key, key, ["spiffe://secinfra.local/app"])
    id = Identity.parse_identity(cert.to_pem, key, received_at: Time.now.utc)
    now = Time.now
    assert Identity.chains_to?(id, Identity.load_bundle(ca_cert.to_pem), now)
    refute Identity.chains_to?(id, Identity.load_bundle(other_cert.to_pem), now)
    next_cert, = ca(name: "next CA") # a rotation bundle: old and new CA
    assert Identity.chains_to?(id, Identity.load_bundle(next_cert.to_pem + ca_cert.to_pem), now)
    refute Identity.chains_to?(id, Identity.load_bundle(ca_cert.to_pem), now + 7200) # CA expired
  end
end
