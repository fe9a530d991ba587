# frozen_string_literal: true

require "openssl"

module Secinfra
  # Service-to-service mTLS from an identity source ({StaticIdentity},
  # {RotatingIdentity}, or a client's +client.source+), after go-spiffe's
  # +tlsconfig+: TLS contexts that present the source's current X509-SVID
  # and verify the peer's against the current trust bundle, the X509-SVID
  # rules and an {Authorizer}, in the handshake. One subject per file under
  # mtls/: the authorizers (authorizer.rb), the peer check (peer_verifier.rb)
  # and its error (peer_refused.rb), the contexts (context.rb) and what
  # makes them per snapshot (context_factory.rb), the listener (server.rb)
  # and the Net::HTTP helper (http.rb). The guide is docs/mtls/ruby.md.
  #
  #   authorizer = Secinfra::MTLS::Authorizer.id("spiffe://secinfra.local/orders")
  #   server = Secinfra::MTLS.server(TCPServer.new("127.0.0.1", 8443), source, authorizer: authorizer)
  #   server.serve { |ssl| ... Secinfra::MTLS.peer_id(ssl) ... }
  module MTLS
    module_function

    # A server context for the source's current snapshot. An OpenSSL
    # context is fixed once made: accept each connection with
    # {Context#current} (or use {Server}, which does) to present renewals
    # and verify with a new bundle without a restart.
    #
    # @param source [Identity::Source]
    # @param authorizer [Authorizer] which clients are accepted (required: there is no default)
    # @param logger [Logger, nil] receives refusals (warn)
    # @param on_refusal [#call, nil] given every {PeerRefused}
    # @return [Context] an OpenSSL::SSL::SSLContext
    # @raise [ArgumentError] without an {Authorizer}
    # @raise [IdentityExpired] when the source has no current snapshot
    def server_context(source, authorizer:, logger: nil, on_refusal: nil)
      ContextFactory.new(source, authorizer, :server, logger: logger, on_refusal: on_refusal).context
    end

    # A client context for the source's current snapshot; for each new
    # connection use {Context#current}.
    #
    # @param authorizer [Authorizer] which servers are accepted (required)
    # @return [Context] an OpenSSL::SSL::SSLContext
    # @see server_context
    def client_context(source, authorizer:, logger: nil, on_refusal: nil)
      ContextFactory.new(source, authorizer, :client, logger: logger, on_refusal: on_refusal).context
    end

    # An mTLS listener on +tcp_server+.
    #
    # @param tcp_server [TCPServer]
    # @return [Server]
    def server(tcp_server, source, authorizer:, logger: nil, on_refusal: nil, **settings)
      context = server_context(source, authorizer: authorizer, logger: logger, on_refusal: on_refusal)
      Server.new(tcp_server, context, **(logger ? settings.merge(logger: logger) : settings))
    end

    # A Net::HTTP to +address+:+port+ over mTLS (not started).
    #
    # @return [HTTP]
    def http(address, port, source, authorizer:, logger: nil, on_refusal: nil)
      HTTP.dial(address, port, ContextFactory.new(source, authorizer, :client, logger: logger, on_refusal: on_refusal))
    end

    # The verified SPIFFE ID of the peer of +ssl+, a socket whose handshake
    # completed with an MTLS context (a handshake only completes once the
    # peer passed every check).
    #
    # @param ssl [OpenSSL::SSL::SSLSocket]
    # @return [String]
    # @raise [ArgumentError] when +ssl+ was not made with an MTLS context or
    #   its handshake has not completed
    def peer_id(ssl)
      unless ssl.context.is_a?(Context)
        raise ArgumentError, "secinfra: mtls: the socket was not made with a Secinfra::MTLS context; its peer is not verified"
      end

      known = ssl.instance_variable_get(PEER_IVAR)
      return known if known

      leaf = ssl.peer_cert
      if leaf.nil? || ssl.verify_result != OpenSSL::X509::V_OK
        raise ArgumentError, "secinfra: mtls: the socket has no verified peer (is the handshake done?)"
      end

      Identity.spiffe_id_of(leaf)
    end

    # Where {Server} keeps the peer ID its post-handshake check confirmed,
    # so reading it in a handler copies no certificate out of OpenSSL.
    PEER_IVAR = :@secinfra_mtls_peer_id

    # @api private
    def remember_peer(ssl, spiffe_id)
      ssl.instance_variable_set(PEER_IVAR, spiffe_id)
    end
  end
end

require_relative "mtls/authorizer"
require_relative "mtls/peer_refused"
require_relative "mtls/peer_verifier"
require_relative "mtls/context"
require_relative "mtls/context_factory"
require_relative "mtls/server"
require_relative "mtls/http"
