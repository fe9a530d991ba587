# frozen_string_literal: true

require "test_helper"

class IdentityTest < Minitest::Test
  Identity = Secinfra::Identity

  def ca(td = "secinfra.local", name: "test CA")
    key = OpenSSL::PKey::EC.generate("prime256v1")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 1
    cert.subject = cert.issuer = OpenSSL::X509::Name.parse("/CN=#{name}")
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    ef = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(ef.create_extension("basicConstraints", "CA:TRUE", true))
    cert.add_extension(ef.create_extension("subjectAltName", "URI:spiffe://#{td}", false))
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    [cert, key]
  end

  def leaf(ca_cert, ca_key, key, uris, not_before: Time.now - 60, not_after: Time.now + 3600)
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 0xabc
    cert.subject = OpenSSL::X509::Name.new
    cert.issuer = ca_cert.subject
    cert.public_key = key
    cert.not_before = not_before
    cert.not_after = not_after
    ef = OpenSSL::X509::ExtensionFactory.new(ca_cert, cert)
    cert.add_extension(ef.create_extension("subjectAltName", uris.map { |u| "URI:#{u}" }.join(","), false))
    cert.sign(ca_key, OpenSSL::Digest.new("SHA256"))
    cert
  end

  def test_csr_has_empty_subject_no_attributes_and_a_valid_signature
    key = Identity.new_private_key
    assert_equal "prime256v1", key.group.curve_name
    pem = Identity.build_csr(key)
    assert pem.start_with?("-----BEGIN CERTIFICATE REQUEST-----")
    csr = OpenSSL::X509::Request.new(pem)
    assert csr.verify(key)
    assert_empty csr.subject.to_a
    assert_empty csr.attributes
    assert_equal key.public_to_der, csr.public_key.public_to_der
    refute_includes pem, key.private_to_pem
  end

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

  def test_parse_identity_checks_svid_and_key
    ca_cert, ca_key = ca
    key = Identity.new_private_key
    good = leaf(ca_cert, ca_key, key, ["spiffe://secinfra.local/app"])
    received = Time.now.utc
    id = Identity.parse_identity(good.to_pem, key, received_at: received)
    assert_equal "spiffe://secinfra.local/app", id.spiffe_id
    assert_equal "abc", id.serial
    refute_includes id.inspect, "PRIVATE"
    two = leaf(ca_cert, ca_key, key, ["spiffe://secinfra.local/a", "spiffe://secinfra.local/b"])
    assert_raises(Identity::IdentityError) { Identity.parse_identity(two.to_pem, key, received_at: received) }
    other = Identity.new_private_key
    assert_raises(Identity::IdentityError) { Identity.parse_identity(good.to_pem, other, received_at: received) }
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

  def test_issue_time_and_renewal_window
    not_before = Time.utc(2026, 1, 1, 11, 59, 0)
    received = Time.utc(2026, 1, 1, 12, 0, 0)
    assert_equal received, Identity.issued_at(not_before, received)
    assert_equal Time.utc(2026, 1, 1, 12, 0, 0), Identity.issued_at(not_before, Time.utc(2026, 1, 1, 12, 40, 0))
    id = Secinfra::X509Identity.new(spiffe_id: "spiffe://x/y", chain: [], key: nil, serial: "1",
                                    not_before: not_before, not_after: received + 3600, issued_at: received)
    random = Random.new(3)
    200.times do
      at = Identity.renewal_time(id, random)
      assert_operator at, :>=, received + (24 * 60)
      assert_operator at, :<=, received + (30 * 60)
    end
  end

  def test_bundle_refresh_interval_clamps
    assert_equal 300.0, Identity.bundle_refresh_interval(nil)
    assert_equal 300.0, Identity.bundle_refresh_interval(-5)
    assert_equal 1.0, Identity.bundle_refresh_interval(0.2)
    assert_equal 86_400.0, Identity.bundle_refresh_interval(1e9)
    assert_equal 2.0, Identity.bundle_refresh_interval(2)
  end

  def test_static_identity_expires
    ca_cert, ca_key = ca
    key = Identity.new_private_key
    cert = leaf(ca_cert, ca_key, key, ["spiffe://secinfra.local/app"], not_after: Time.now + 60)
    clock = Secinfra::Testing::FakeClock.new(now: Time.now.utc)
    identity = Identity.parse_identity(cert.to_pem, key, received_at: clock.now)
    source = Secinfra::StaticIdentity.new(Identity.load_bundle(ca_cert.to_pem), identity, clock: clock)
    assert_equal identity, source.ensure_identity
    clock.advance(61)
    error = assert_raises(Secinfra::IdentityExpired) { source.ensure_identity }
    assert_match(/static identity cannot renew/, error.message)
    refute source.refresh_bundle
  end

  def test_rotating_identity_needs_exactly_one_attestation
    cert, = ca
    bundle = Identity.load_bundle(cert.to_pem)
    assert_raises(ArgumentError) { Secinfra::RotatingIdentity.new(bundle) }
    assert_raises(ArgumentError) { Secinfra::RotatingIdentity.new(bundle, join_token: "a", jwt: "b") }
    assert_raises(ArgumentError) { Secinfra::RotatingIdentity.new(bundle, join_token: "a", renewal_jitter: 2) }
    refute_includes Secinfra::RotatingIdentity.new(bundle, join_token: "sjt_secret").inspect, "sjt_secret"
  end

  def test_client_refuses_plain_http
    cert, = ca
    source = Secinfra::StaticIdentity.new(Identity.load_bundle(cert.to_pem))
    error = assert_raises(ArgumentError) { Secinfra::Client.new("http://127.0.0.1:1", source) }
    assert_match(/https/, error.message)
    assert_raises(ArgumentError) { Secinfra::Client.new("https://127.0.0.1:1", source, cache_size: 0) }
    assert_raises(ArgumentError) { Secinfra::Client.new("https://127.0.0.1:1", source, bogus: 1) }
  end
end
