# frozen_string_literal: true

module Secinfra
  module Runtime
    # When a rotating identity acts, as pure timing (no I/O, no clock of its
    # own): when to renew (spec 9.2), how long after a failed renewal
    # (9.4), when to refresh the trust bundle and to retry a failed fetch
    # (10.2), and when to retry a failed re-enrolment (9.7). One per client,
    # with the canonical settings of the spec's defaults table (1.7); an
    # invalid setting is refused when the policy is made, naming it (1.4.4).
    #
    #   Secinfra::Client.enrol(url, join_token: token, bundle_file: "bundle.pem",
    #                          identity_settings: { renewal_fraction: 0.6, bundle_retry: 10 })
    class RotationPolicy
      # Renewal starts at this fraction of the lifetime (spec 9.2.1) ...
      RENEWAL_FRACTION = 0.5
      # ... minus a random jitter of up to this fraction of the lifetime.
      RENEWAL_JITTER = 0.1
      # Seconds: the backoff ceiling after the first failed renewal; doubles per failure (9.4.1).
      RENEWAL_RETRY_BASE = 1.0
      # Seconds: the renewal backoff ceiling never grows past this.
      RENEWAL_RETRY_MAX = 60.0
      # Seconds before NotAfter by which the next renewal try is made at the latest (9.4.2).
      RENEWAL_EXPIRY_MARGIN = 1.0
      # Seconds between re-enrolment tries after expiry (9.7).
      REENROL_RETRY = 30.0
      # Seconds before a failed bundle fetch is tried again (or the refresh, if shorter; 10.2.3).
      BUNDLE_RETRY = 30.0
      # Seconds between bundle refreshes when the bundle has no usable hint (10.2.1) ...
      BUNDLE_REFRESH_DEFAULT = 300.0
      # ... and the bounds its hint is clamped to.
      BUNDLE_REFRESH_MIN = 1.0
      BUNDLE_REFRESH_MAX = 86_400.0

      # The settings, by their canonical names.
      SETTINGS = %i[renewal_fraction renewal_jitter renewal_retry_base renewal_retry_max renewal_expiry_margin
                    reenrol_retry bundle_retry bundle_refresh_default bundle_refresh_min bundle_refresh_max].freeze

      attr_reader(*SETTINGS)

      # @param renewal_fraction [Numeric] in [0, 1]
      # @param renewal_jitter [Numeric] in [0, 1]
      # @param renewal_retry_base [Numeric] seconds (>= 0)
      # @param renewal_retry_max [Numeric] seconds (>= 0)
      # @param renewal_expiry_margin [Numeric] seconds (>= 0)
      # @param reenrol_retry [Numeric] seconds (>= 0)
      # @param bundle_retry [Numeric] seconds (>= 0)
      # @param bundle_refresh_default [Numeric] seconds (> 0)
      # @param bundle_refresh_min [Numeric] seconds (> 0)
      # @param bundle_refresh_max [Numeric] seconds (>= +bundle_refresh_min+)
      # @raise [ArgumentError] naming the first invalid setting
      def initialize(renewal_fraction: RENEWAL_FRACTION, renewal_jitter: RENEWAL_JITTER,
                     renewal_retry_base: RENEWAL_RETRY_BASE, renewal_retry_max: RENEWAL_RETRY_MAX,
                     renewal_expiry_margin: RENEWAL_EXPIRY_MARGIN, reenrol_retry: REENROL_RETRY,
                     bundle_retry: BUNDLE_RETRY, bundle_refresh_default: BUNDLE_REFRESH_DEFAULT,
                     bundle_refresh_min: BUNDLE_REFRESH_MIN, bundle_refresh_max: BUNDLE_REFRESH_MAX)
        { renewal_fraction: renewal_fraction, renewal_jitter: renewal_jitter }.each do |name, value|
          check(name, value, "a number in [0, 1]") { value.between?(0, 1) }
        end
        { renewal_retry_base: renewal_retry_base, renewal_retry_max: renewal_retry_max,
          renewal_expiry_margin: renewal_expiry_margin, reenrol_retry: reenrol_retry,
          bundle_retry: bundle_retry }.each do |name, value|
          check(name, value, "a finite number >= 0") { value >= 0 }
        end
        { bundle_refresh_default: bundle_refresh_default, bundle_refresh_min: bundle_refresh_min,
          bundle_refresh_max: bundle_refresh_max }.each do |name, value|
          check(name, value, "a finite number > 0") { value.positive? }
        end
        check(:bundle_refresh_max, bundle_refresh_max, "at least bundle_refresh_min (#{bundle_refresh_min})") do
          bundle_refresh_max >= bundle_refresh_min
        end

        @renewal_fraction = renewal_fraction.to_f
        @renewal_jitter = renewal_jitter.to_f
        @renewal_retry_base = renewal_retry_base.to_f
        @renewal_retry_max = renewal_retry_max.to_f
        @renewal_expiry_margin = renewal_expiry_margin.to_f
        @reenrol_retry = reenrol_retry.to_f
        @bundle_retry = bundle_retry.to_f
        @bundle_refresh_default = bundle_refresh_default.to_f
        @bundle_refresh_min = bundle_refresh_min.to_f
        @bundle_refresh_max = bundle_refresh_max.to_f
        freeze
      end

      # When renewal of +identity+ starts (spec 9.2.1): its issue time plus
      # +renewal_fraction+ of its lifetime, minus a jitter drawn from
      # [0, +renewal_jitter+ of the lifetime].
      #
      # @param identity [X509Identity]
      # @param random [Random]
      # @return [Time]
      def renewal_time(identity, random)
        lifetime = identity.not_after - identity.issued_at
        identity.issued_at + (@renewal_fraction * lifetime) - (random.rand * @renewal_jitter * lifetime)
      end

      # Seconds to wait after the +failures+-th consecutive failed renewal
      # (1-based, spec 9.4.1): uniform(0, min(max, base * 2^(failures - 1))).
      #
      # @param failures [Integer]
      # @param random [Random]
      # @return [Float]
      def retry_delay(failures, random)
        raise ArgumentError, "secinfra: identity: failures are counted from 1" if failures < 1

        ceiling = Retry.backoff_ceiling(failures, base: @renewal_retry_base, cap: @renewal_retry_max)
        Retry.full_jitter(ceiling, random)
      end

      # When to try renewing again after the +failures+-th failure at +now+:
      # after {#retry_delay}, but never later than +renewal_expiry_margin+
      # before +not_after+, and at once when that moment has passed (9.4.2).
      #
      # @return [Time]
      def renewal_retry_time(failures, now:, not_after:, random:)
        at = [now + retry_delay(failures, random), not_after - @renewal_expiry_margin].min
        [at, now].max
      end

      # Seconds from one successful bundle fetch to the next (spec 10.2.1):
      # the hint clamped to the bounds, or the default without a usable hint.
      #
      # @param hint [Numeric, nil] the held bundle's +spiffe_refresh_hint+
      # @return [Float]
      def bundle_refresh_interval(hint)
        return @bundle_refresh_default unless hint.is_a?(Numeric) && hint.positive? && hint.finite?

        hint.to_f.clamp(@bundle_refresh_min, @bundle_refresh_max)
      end

      # Seconds from a failed bundle fetch to the next try (spec 10.2.3).
      #
      # @param hint [Numeric, nil] the held bundle's +spiffe_refresh_hint+
      # @return [Float]
      def bundle_retry_interval(hint)
        [bundle_refresh_interval(hint), @bundle_retry].min
      end

      def inspect
        "#<Secinfra::Runtime::RotationPolicy #{SETTINGS.map { |s| "#{s}=#{public_send(s)}" }.join(", ")}>"
      end

      private

      def check(name, value, what)
        return if value.is_a?(Numeric) && value.to_f.finite? && yield

        raise ArgumentError, "secinfra: identity: #{name} must be #{what}, got #{value.inspect}"
      end
    end
  end
end
