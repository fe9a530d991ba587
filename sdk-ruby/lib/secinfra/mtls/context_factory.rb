# frozen_string_literal: true

require "logger"

module Secinfra
  module MTLS
    # Makes the {Context}s of one source, role and authorizer: on every ask
    # it reads the source's current snapshot and bundle, and makes a new
    # context only when either changed (an OpenSSL context costs about
    # 0.1 ms, a tenth of a handshake). Thread-safe.
    #
    # @api private
    class ContextFactory
      # The two sides of a connection.
      ROLES = %i[server client].freeze

      # @return [Symbol] :server or :client
      attr_reader :role
      # @return [PeerVerifier]
      attr_reader :verifier

      # @param source [Identity::Source]
      # @param authorizer [Authorizer]
      # @param role [Symbol] :server or :client
      # @raise [ArgumentError] without an {Authorizer}: no default accepts anyone
      def initialize(source, authorizer, role, logger: nil, on_refusal: nil)
        unless authorizer.is_a?(Authorizer)
          raise ArgumentError,
                "secinfra: mtls: authorizer: give a Secinfra::MTLS::Authorizer (got #{authorizer.inspect}); " \
                "there is no default, and accepting any peer is Authorizer.any"
        end
        raise ArgumentError, "secinfra: mtls: role must be one of #{ROLES.inspect}" unless ROLES.include?(role)
        if !on_refusal.nil? && !on_refusal.respond_to?(:call)
          raise ArgumentError, "secinfra: mtls: on_refusal must answer call"
        end

        @source = source
        @role = role
        trust_domain = SpiffeID.parse(source.server_id).trust_domain
        @verifier = PeerVerifier.new(authorizer, trust_domain, logger: logger || Logger.new($stderr, level: Logger::WARN),
                                                               on_refusal: on_refusal)
        @lock = Mutex.new
        @context = nil
        @store = nil
      end

      # The context of the current snapshot and bundle.
      #
      # @return [Context]
      # @raise [IdentityExpired]
      def context
        identity, bundle, store = snapshot
        @lock.synchronize do
          held = @context
          return held if held && held.identity.equal?(identity) && held.bundle.equal?(bundle)

          @context = Context.new(self, identity, bundle, store)
        end
      end

      # The current snapshot, bundle and an X509 store of that bundle (one
      # store per bundle).
      #
      # @return [Array(X509Identity, TrustBundle, OpenSSL::X509::Store)]
      # @raise [IdentityExpired]
      def snapshot
        identity = @source.ensure_identity
        bundle = @source.bundle
        store = @lock.synchronize do
          @store = [bundle, bundle.store] unless @store && @store[0].equal?(bundle)
          @store[1]
        end
        [identity, bundle, store]
      end
    end
  end
end
