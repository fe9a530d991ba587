# frozen_string_literal: true

require "openssl"

module Secinfra
  module MTLS
    # An SSLContext made from one identity snapshot and one trust bundle of a
    # source: it presents that snapshot (chain and key together, never apart)
    # and verifies the peer with {PeerVerifier} against that bundle. An
    # OpenSSL context is frozen once set up, so a renewal or a new bundle
    # means a new context: {#current} answers the one for the source's
    # current snapshot and bundle (itself while they are current, and
    # cached), and the helpers ({Server}, {HTTP}) ask it for every new
    # connection. A server context also switches a client that sends SNI to
    # the current context within the handshake, for frameworks that keep one
    # context; clients that send no SNI (most clients that dial an IP
    # address) see the snapshot of the context the socket was made with.
    #
    # Session resumption is off (no tickets, no session cache), so every
    # handshake verifies the peer anew; no host name is verified (the SPIFFE
    # ID is).
    class Context < OpenSSL::SSL::SSLContext
      # Lowest TLS version (TLS 1.3 is preferred by OpenSSL).
      MIN_TLS_VERSION = OpenSSL::SSL::TLS1_2_VERSION

      # @return [X509Identity] the snapshot this context presents
      attr_reader :identity
      # @return [TrustBundle] the bundle it verifies peers with
      attr_reader :bundle

      # @api private
      # @param factory [ContextFactory]
      def initialize(factory, identity, bundle, store)
        super()
        @factory = factory
        @identity = identity
        @bundle = bundle
        self.min_version = MIN_TLS_VERSION
        add_certificate(identity.leaf, identity.key, identity.chain.drop(1))
        self.cert_store = store
        self.verify_mode = OpenSSL::SSL::VERIFY_PEER | OpenSSL::SSL::VERIFY_FAIL_IF_NO_PEER_CERT
        self.verify_hostname = false
        self.verify_callback = factory.verifier.callback
        self.session_cache_mode = OpenSSL::SSL::SSLContext::SESSION_CACHE_OFF
        self.options |= OpenSSL::SSL::OP_NO_TICKET
        # Set before the freeze, since OpenSSL::SSL::SSLServer sets one when missing.
        self.session_id_context = "secinfra-mtls"
        self.servername_cb = ->(_args) { factory.context } if server?
        setup
      end

      # The context of the source's current snapshot and bundle.
      #
      # @return [Context]
      # @raise [IdentityExpired] when the source has no current snapshot
      def current = @factory.context

      # Whether this context serves (else it dials).
      def server? = @factory.role == :server

      # The post-handshake check of a socket made with this context: call it
      # right after +accept+ or +connect+ returned, on the same thread, for
      # the ID the handshake's verify callback accepted ({Server} and {HTTP}
      # do).
      #
      # @return [String] the peer's SPIFFE ID
      # @raise [PeerRefused]
      def confirm(ssl) = @factory.verifier.confirm(ssl)

      def inspect = "#<Secinfra::MTLS::Context #{@factory.role} #{@identity.inspect} #{@bundle.inspect}>"
      alias to_s inspect
    end
  end
end
