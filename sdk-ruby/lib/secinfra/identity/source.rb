# frozen_string_literal: true

module Secinfra
  module Identity
    # The interface the transport and the call pipeline ask on every
    # connection and every mTLS attempt (spec 8.1), so that a rotation needs
    # no reload: a static identity ({StaticIdentity}) and a rotating one
    # ({RotatingIdentity}) are used the same way. An application may hand
    # {Secinfra::Client.new} any object that includes this module and
    # defines its methods.
    module Source
      # @return [String] the SPIFFE ID the server must present
      def server_id
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define server_id"
      end

      # @return [X509Identity, nil] the current snapshot (chain and key together)
      def identity
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define identity"
      end

      # @return [TrustBundle] the current trust bundle
      def bundle
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define bundle"
      end

      # The snapshot an mTLS call presents, re-enrolling first where the
      # source can and must (spec 9.7).
      #
      # @param _deadline_at [Float, nil] the call's deadline, on the monotonic clock
      # @return [X509Identity]
      # @raise [IdentityExpired] when there is no current snapshot
      def ensure_identity(_deadline_at = nil)
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define ensure_identity"
      end

      # Fetches the bundle once, now (after a server verification failure, spec 10.3).
      #
      # @return [Boolean] true when a newer bundle replaced the held one
      def refresh_bundle
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define refresh_bundle"
      end

      # Calls +_callable+ with every {RotationEvent}, in order.
      #
      # @param _callable [#call]
      def subscribe(_callable)
        raise NotImplementedError, "secinfra: identity: #{self.class} does not define subscribe"
      end
    end
  end
end
