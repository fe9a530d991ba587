# frozen_string_literal: true

require "test_helper"

# SPIFFE ID parsing (identity/spiffe_id.rb).
class SpiffeIDTest < Minitest::Test
  SpiffeID = Secinfra::SpiffeID

  def test_parses_trust_domain_and_path
    [
      ["spiffe://secinfra.local/payments/api", "secinfra.local", "/payments/api"],
      ["spiffe://secinfra.local", "secinfra.local", ""],
      ["spiffe://a-b_c.9/A.b-c_D", "a-b_c.9", "/A.b-c_D"]
    ].each do |text, trust_domain, path|
      id = SpiffeID.parse(text)
      assert_equal [trust_domain, path, text], [id.trust_domain, id.path, id.to_s]
    end
  end

  def test_refuses_what_the_specification_forbids
    [
      "https://secinfra.local/x", "SPIFFE://secinfra.local/x", "spiffe://Secinfra.local/x",
      "spiffe://secinfra.local:8443/x", "spiffe://user@secinfra.local/x", "spiffe:///x",
      "spiffe://secinfra.local/", "spiffe://secinfra.local//x", "spiffe://secinfra.local/./x",
      "spiffe://secinfra.local/x/..", "spiffe://secinfra.local/x?y", "spiffe://secinfra.local/x#y",
      "spiffe://secinfra.local/%41", "spiffe://#{"a" * 2048}"
    ].each do |text|
      error = assert_raises(ArgumentError, text) { SpiffeID.parse(text) }
      assert_match(/\Asecinfra: spiffe id: /, error.message)
    end
  end

  def test_under_is_segment_by_segment
    prefix = SpiffeID.parse("spiffe://td/payments")
    assert SpiffeID.parse("spiffe://td/payments").under?(prefix)
    assert SpiffeID.parse("spiffe://td/payments/api").under?(prefix)
    refute SpiffeID.parse("spiffe://td/payments-admin").under?(prefix)
    refute SpiffeID.parse("spiffe://other/payments/api").under?(prefix)
  end

  def test_value_equality
    assert_equal SpiffeID.parse("spiffe://td/a"), SpiffeID.parse("spiffe://td/a")
    assert_equal 1, [SpiffeID.parse("spiffe://td/a"), SpiffeID.parse("spiffe://td/a")].uniq.size
    refute_equal SpiffeID.parse("spiffe://td/a"), "spiffe://td/a"
  end
end
