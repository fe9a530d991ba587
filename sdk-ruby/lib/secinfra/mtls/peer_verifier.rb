# frozen_string_literal: true

require "openssl"

module Secinfra
  module MTLS
    # Checks a TLS peer in the handshake, as OpenSSL's verify callback, so a
    # refused peer never gets an application byte through: OpenSSL verifies
    # the chain to the context's store (the source's trust bundle when the
    # context was made, at the current time); this adds the X509-SVID rules
    # on the leaf (exactly one URI SAN, a valid SPIFFE ID, not a CA, no
    # certificate or CRL signing), the trust domain of the bundle, and the
    # authorizer, once per handshake.
    #
    # A refusal is logged (warn, never key material) and handed to
    # +on_refusal+. The verdict (the refusal, or the accepted ID) is left
    # fiber-local for the code that started the handshake ({.take_refusal},
    # {#confirm}): OpenSSL runs the callback on the thread and fiber doing
    # the handshake, while one context serves many connections. The helpers'
    # post-handshake check ({#confirm}) takes the accepted ID from there, so
    # a handshake that completed without this callback accepting the leaf
    # (a resumed session, say) is refused, and the peer's certificate is not
    # copied out of OpenSSL a second time (a copy costs about 0.1 ms).
    class PeerVerifier
      # The fiber-local slot of the last refusal.
      REFUSAL = :secinfra_mtls_refusal
      # The fiber-local slot of the last accepted peer ID.
      PEER = :secinfra_mtls_peer
      # OpenSSL verdicts that mean "outside its validity period".
      VALIDITY_ERRORS = [OpenSSL::X509::V_ERR_CERT_HAS_EXPIRED, OpenSSL::X509::V_ERR_CERT_NOT_YET_VALID].freeze

      # The refusal the last handshake on this fiber left, cleared.
      #
      # @return [PeerRefused, nil]
      def self.take_refusal
        Thread.current[REFUSAL].tap { Thread.current[REFUSAL] = nil }
      end

      # Clears both verdict slots before a handshake.
      def self.reset
        Thread.current[REFUSAL] = nil
        Thread.current[PEER] = nil
      end

      # @param authorizer [Authorizer]
      # @param trust_domain [String] the trust bundle's trust domain
      # @param logger [Logger]
      # @param on_refusal [#call, nil] given every {PeerRefused}
      def initialize(authorizer, trust_domain, logger:, on_refusal:)
        @authorizer = authorizer
        @trust_domain = trust_domain
        @logger = logger
        @on_refusal = on_refusal
        @callback = method(:verify).to_proc
      end

      # @return [Proc] the verify callback (+|preverify_ok, store_context|+)
      attr_reader :callback

      # The SPIFFE ID of an X509-SVID leaf whose chain already verified, if
      # the rules and the authorizer accept it.
      #
      # @param leaf [OpenSSL::X509::Certificate]
      # @return [SpiffeID]
      # @raise [PeerRefused]
      def check(leaf)
        uris = Identity.uri_sans(leaf)
        shown = uris.empty? ? nil : uris.join(", ")
        raise PeerRefused.new(:not_svid, peer_id: shown, detail: "#{uris.size} URI SANs") unless uris.size == 1

        id = parse_id(uris.first)
        raise PeerRefused.new(:ca_leaf, peer_id: id.to_s) if signer?(leaf)
        unless id.member_of?(@trust_domain)
          raise PeerRefused.new(:trust_domain, peer_id: id.to_s, detail: "the bundle is for #{@trust_domain}")
        end
        unless authorize(id)
          raise PeerRefused.new(:unauthorized, peer_id: id.to_s, detail: "it accepts #{@authorizer.description}")
        end

        id
      end

      # The post-handshake check of a socket whose handshake just completed
      # on this fiber: the ID this callback accepted in that handshake.
      #
      # @param ssl [OpenSSL::SSL::SSLSocket]
      # @return [String] the peer's SPIFFE ID
      # @raise [PeerRefused] when the callback accepted no leaf in it
      def confirm(ssl)
        id = Thread.current[PEER]
        Thread.current[PEER] = nil
        if id.nil? || ssl.verify_result != OpenSSL::X509::V_OK
          raise PeerRefused.new(:unverified, detail: "verify result #{ssl.verify_result}")
        end

        id
      rescue PeerRefused => e
        report(e)
        raise
      end

      private

      def verify(preverify_ok, store)
        return refuse(chain_failure(store)) unless preverify_ok
        return true unless store.error_depth.zero?

        Thread.current[PEER] = check(store.current_cert).to_s
        true
      rescue PeerRefused => e
        refuse(e)
      rescue StandardError => e
        refuse(PeerRefused.new(:untrusted, detail: "the check failed: #{e.class}"))
      end

      def chain_failure(store)
        leaf = Array(store.chain).first || store.current_cert
        uris = leaf ? Identity.uri_sans(leaf) : []
        rule = VALIDITY_ERRORS.include?(store.error) ? :expired : :untrusted
        PeerRefused.new(rule, peer_id: uris.empty? ? nil : uris.join(", "),
                              detail: "#{store.error_string}, certificate at depth #{store.error_depth}")
      end

      def parse_id(uri)
        SpiffeID.parse(uri)
      rescue ArgumentError => e
        raise PeerRefused.new(:not_svid, peer_id: uri, detail: e.message)
      end

      def authorize(id)
        @authorizer.authorized?(id)
      rescue StandardError => e
        raise PeerRefused.new(:unauthorized, peer_id: id.to_s,
                                             detail: "#{@authorizer.description} raised #{e.class}: #{e.message}")
      end

      # A CA, or a certificate allowed to sign certificates or CRLs.
      def signer?(cert)
        cert.extensions.any? do |ext|
          case ext.oid
          when "basicConstraints" then ext.value.include?("CA:TRUE")
          when "keyUsage" then ext.value.include?("Certificate Sign") || ext.value.include?("CRL Sign")
          else false
          end
        end
      end

      def refuse(refusal)
        Thread.current[REFUSAL] = refusal
        Thread.current[PEER] = nil
        report(refusal)
        false
      end

      def report(refusal)
        @logger.warn(refusal.message)
        @on_refusal&.call(refusal)
      rescue StandardError => e
        @logger.warn("secinfra: mtls: an on_refusal observer failed: #{e.class}: #{e.message}")
      end
    end
  end
end
