# frozen_string_literal: true

require "net/http"
require "openssl"

module Secinfra
  module MTLS
    # A Net::HTTP that dials over mTLS from a source: every new connection
    # (the first, and each reconnect after a keep-alive connection closed)
    # presents the source's current snapshot and verifies the server against
    # the current bundle, the X509-SVID rules and the authorizer, in the
    # handshake, before the request is written. No TLS session is resumed,
    # so each connection is verified anew; no host name is verified (the
    # SPIFFE ID is). Use it as any Net::HTTP:
    #
    #   http = Secinfra::MTLS.http("127.0.0.1", 8443, source, authorizer: authorizer)
    #   http.start { |h| h.get("/") }
    #   http.peer_id # => "spiffe://secinfra.local/billing"
    #
    # A refused server raises {PeerRefused} (the OpenSSL error as its cause).
    class HTTP < Net::HTTP
      # @return [String, nil] the server's verified SPIFFE ID on the current connection
      attr_reader :peer_id

      # @api private
      # @param factory [ContextFactory] a client factory
      # @return [HTTP] not started
      def self.dial(address, port, factory)
        new(address, port).tap { |http| http.__send__(:use_factory, factory) }
      end

      def inspect = "#<Secinfra::MTLS::HTTP #{address}:#{port} peer=#{@peer_id || "(none)"}>"

      private

      def use_factory(factory)
        @mtls = factory
        @peer_id = nil
        self.use_ssl = true
      end

      # Net::HTTP reads its TLS settings when it connects: load the current ones.
      def connect
        identity, _bundle, store = @mtls.snapshot
        self.cert = identity.leaf
        self.key = identity.key
        self.extra_chain_cert = identity.chain.drop(1)
        self.cert_store = store
        self.min_version = Context::MIN_TLS_VERSION
        self.verify_mode = OpenSSL::SSL::VERIFY_PEER
        self.verify_hostname = false
        self.verify_callback = @mtls.verifier.callback
        @ssl_session = nil # never resume: every connection verifies the server
        @peer_id = nil
        PeerVerifier.reset
        super
      rescue OpenSSL::SSL::SSLError
        refusal = PeerVerifier.take_refusal
        raise refusal if refusal

        raise
      end

      # Net::HTTP's hook after the handshake: the post-handshake check.
      def on_connect
        @peer_id = @mtls.verifier.confirm(@socket.io)
      end
    end
  end
end
