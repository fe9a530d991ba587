# frozen_string_literal: true

require "test_helper"

# Pure rotation timing and its per-client settings (runtime/rotation.rb).
class RotationPolicyTest < Minitest::Test
  Policy = Secinfra::Runtime::RotationPolicy

  def identity(issued_at, lifetime)
    Secinfra::X509Identity.new(spiffe_id: "spiffe://x/y", chain: [], key: nil, serial: "1",
                               not_before: issued_at - 60, not_after: issued_at + lifetime, issued_at: issued_at)
  end

  def test_renewal_window
    received = Time.utc(2026, 1, 1, 12, 0, 0)
    id = identity(received, 3600)
    random = Random.new(3)
    200.times do
      at = Policy.new.renewal_time(id, random)
      assert_operator at, :>=, received + (24 * 60)
      assert_operator at, :<=, received + (30 * 60)
    end
  end

  def test_renewal_time_follows_the_settings
    received = Time.utc(2026, 1, 1, 12, 0, 0)
    at = Policy.new(renewal_fraction: 0.8, renewal_jitter: 0).renewal_time(identity(received, 100), Random.new(1))
    assert_equal received + 80, at
  end

  RETRY_DELAYS = [
    # name, settings, failures, want ceiling
    ["first failure waits up to the base", {}, 1, 1.0],
    ["the ceiling doubles per failure", {}, 3, 4.0],
    ["the ceiling stops at the maximum", {}, 7, 60.0],
    ["a huge count stays at the maximum", {}, 10_000, 60.0],
    ["settings move both bounds", { renewal_retry_base: 0.5, renewal_retry_max: 3 }, 4, 3.0]
  ].freeze

  def test_retry_delay_table
    RETRY_DELAYS.each do |name, settings, failures, ceiling|
      policy = Policy.new(**settings)
      random = Random.new(11)
      draws = Array.new(200) { policy.retry_delay(failures, random) }
      assert(draws.all? { |d| d >= 0 && d <= ceiling }, name)
      assert_operator draws.max, :>, ceiling * 0.8, name
      assert_equal Policy.new(**settings).retry_delay(failures, Random.new(5)),
                   Policy.new(**settings).retry_delay(failures, Random.new(5)), "#{name}: a seeded random pins it"
    end
    assert_raises(ArgumentError) { Policy.new.retry_delay(0, Random.new(1)) }
  end

  def test_renewal_retry_never_later_than_the_margin_before_expiry
    now = Time.utc(2026, 1, 1, 12, 0, 0)
    policy = Policy.new(renewal_retry_base: 100, renewal_retry_max: 100, renewal_expiry_margin: 2)
    assert_operator policy.renewal_retry_time(1, now: now, not_after: now + 10, random: Random.new(1)), :<=, now + 8
    assert_equal now, policy.renewal_retry_time(1, now: now, not_after: now + 1, random: Random.new(1)),
                 "past the margin: at once"
  end

  def test_bundle_refresh_interval_clamps
    policy = Policy.new
    assert_equal 300.0, policy.bundle_refresh_interval(nil)
    assert_equal 300.0, policy.bundle_refresh_interval(-5)
    assert_equal 1.0, policy.bundle_refresh_interval(0.2)
    assert_equal 86_400.0, policy.bundle_refresh_interval(1e9)
    assert_equal 2.0, policy.bundle_refresh_interval(2)
    assert_equal 2.0, policy.bundle_retry_interval(2), "a failed fetch: min(refresh, bundle_retry)"
    assert_equal 30.0, policy.bundle_retry_interval(nil)
    bounded = Policy.new(bundle_refresh_default: 60, bundle_refresh_min: 5, bundle_refresh_max: 600)
    assert_equal 60.0, bounded.bundle_refresh_interval(nil)
    assert_equal 5.0, bounded.bundle_refresh_interval(2)
    assert_equal 600.0, bounded.bundle_refresh_interval(3600)
  end

  INVALID = [
    # setting, value
    [:renewal_fraction, 1.5], [:renewal_jitter, 2], [:renewal_jitter, -0.1], [:renewal_retry_base, -1],
    [:renewal_retry_max, Float::INFINITY], [:renewal_expiry_margin, "1"], [:reenrol_retry, nil],
    [:bundle_retry, Float::NAN], [:bundle_refresh_default, 0], [:bundle_refresh_min, -1],
    [:bundle_refresh_max, 0.5]
  ].freeze

  def test_invalid_settings_are_refused_at_creation_naming_them
    INVALID.each do |setting, value|
      error = assert_raises(ArgumentError, "#{setting}=#{value.inspect}") { Policy.new(setting => value) }
      assert_match(/\bsecinfra: identity: #{setting}\b/, error.message)
    end
    assert_raises(ArgumentError) { Policy.new(renewal_speed: 1) }
  end

  def test_defaults_are_the_spec_table
    policy = Policy.new
    assert_equal [0.5, 0.1, 1.0, 60.0, 1.0, 30.0, 30.0],
                 %i[renewal_fraction renewal_jitter renewal_retry_base renewal_retry_max renewal_expiry_margin
                    reenrol_retry bundle_retry].map { |s| policy.public_send(s) }
    assert policy.frozen?
  end
end
