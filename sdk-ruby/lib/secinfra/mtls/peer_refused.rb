# frozen_string_literal: true

module Secinfra
  module MTLS
    # A TLS peer was refused in the handshake, before any application byte
    # crossed. {#rule} says which check failed and {#peer_id} which ID was
    # presented; the message says both and never holds key material.
    class PeerRefused < Secinfra::Error
      DEFAULT_CODE = "unauthenticated"

      # What each rule means, in refusal messages.
      RULES = {
        untrusted: "does not chain to a CA of the current trust bundle",
        expired: "is expired or not yet valid",
        not_svid: "is not an X509-SVID (exactly one URI SAN, a valid spiffe:// ID)",
        ca_leaf: "is a CA certificate (an X509-SVID leaf must not be a CA or sign certificates or CRLs)",
        trust_domain: "is not in the trust domain of the trust bundle",
        unauthorized: "is not accepted by the authorizer",
        unverified: "completed a handshake that the peer check did not accept (a resumed session?)"
      }.freeze

      # @return [Symbol] a key of {RULES}
      attr_reader :rule
      # @return [String, nil] the presented SPIFFE ID (or the URI SANs) when there was one
      attr_reader :peer_id

      # @param rule [Symbol] a key of {RULES}
      # @param peer_id [String, nil]
      # @param detail [String, nil] what exactly (OpenSSL's verdict, the authorizer)
      def initialize(rule, peer_id: nil, detail: nil)
        @rule = rule
        @peer_id = peer_id
        who = peer_id ? "peer #{peer_id}" : "the peer's certificate"
        text = "secinfra: mtls: refused #{who}: it #{RULES.fetch(rule)}"
        text += " (#{detail})" if detail
        super(text, code: rule == :unauthorized ? "permission_denied" : DEFAULT_CODE)
      end
    end
  end
end
