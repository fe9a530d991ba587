# frozen_string_literal: true

require "test_helper"

# A certificate chain and its key as one value (identity/snapshot.rb).
class SnapshotTest < Minitest::Test
  include TestCerts
  Identity = Secinfra::Identity

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

  def test_issue_time
    not_before = Time.utc(2026, 1, 1, 11, 59, 0)
    received = Time.utc(2026, 1, 1, 12, 0, 0)
    assert_equal received, Identity.issued_at(not_before, received)
    assert_equal Time.utc(2026, 1, 1, 12, 0, 0), Identity.issued_at(not_before, Time.utc(2026, 1, 1, 12, 40, 0))
  end
end
